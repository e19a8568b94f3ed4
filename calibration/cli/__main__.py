from calibration.cli import main

raise SystemExit(main())
