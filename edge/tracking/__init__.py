"""Point tracking backends behind one contract (`base.PointTracker`)."""
