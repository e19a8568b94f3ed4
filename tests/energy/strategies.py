"""Hypothesis strategies shared by the energy tests: parameter sets and energy series."""

from hypothesis import strategies as st

from edge.energy import HysteresisParams


@st.composite
def hysteresis_params(draw, theta_values=None):
    """Any valid HysteresisParams, max_steps and cooldown included; theta_on optionally drawn
    from `theta_values` so thresholds hit series values exactly."""
    up = draw(st.integers(1, 4))
    min_steps = draw(st.integers(0, 6))
    if draw(st.booleans()):
        max_steps = 0
    else:
        max_steps = draw(st.integers(max(up + 1, min_steps), max(up + 1, min_steps) + 10))
    if theta_values and draw(st.booleans()):
        theta = abs(draw(st.sampled_from(theta_values)))
    else:
        theta = draw(st.floats(0.0, 3.0))
    return HysteresisParams(
        theta_on=theta,
        ratio_off=draw(st.floats(0.05, 1.0)),
        up_steps=up,
        down_steps=draw(st.integers(1, 4)),
        cooldown_steps=draw(st.integers(0, 3)),
        alpha=draw(st.one_of(st.just(1.0), st.just(0.7), st.floats(0.05, 1.0))),
        max_steps=max_steps,
        min_steps=min_steps,
    )


def _blocks():
    """Piecewise-constant activity/rest blocks, like motion with pauses."""
    return st.lists(
        st.tuples(st.floats(0.0, 3.0), st.integers(1, 12)), min_size=0, max_size=12
    ).map(lambda bl: [v for v, n in bl for _ in range(n)])


energy_series = st.one_of(
    st.lists(st.floats(0.0, 3.0), min_size=0, max_size=120),
    _blocks(),
    st.lists(st.one_of(st.floats(0.0, 3.0), st.just(float("nan"))), min_size=0, max_size=60),
)


@st.composite
def series_and_params(draw):
    energy = draw(energy_series)
    finite = [v for v in energy if v == v]
    return energy, draw(hysteresis_params(theta_values=finite or None))
