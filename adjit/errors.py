"""Every error adjit raises derives from AdjitError, so users can catch one class."""


class AdjitError(Exception):
    """Base class of every adjit error."""


class AdjitTypeError(AdjitError, TypeError):
    """A value of the wrong kind: a string where an array belongs, integers given to grad."""


class AdjitValueError(AdjitError, ValueError):
    """A value of the right kind but the wrong shape or contents."""


class ConcretizationError(AdjitTypeError):
    """Python control flow or a Python conversion asked for the value of a traced array."""


class MissingRuleError(AdjitError, NotImplementedError):
    """A primitive lacks the rule a transformation needs; the message names both."""


class TracerLeakError(AdjitError):
    """A traced value escaped the function being traced and was used afterwards."""
