"""Automatic differentiation: forward mode (jvp.py), reverse mode as linearize + transpose."""

from adjit.ad.jvp import jvp_eval  # noqa: F401
from adjit.ad.transpose import vjp_eval  # noqa: F401
