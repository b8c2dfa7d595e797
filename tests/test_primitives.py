"""Every primitive's JVP and VJP, checked to second order with check_grads, table-driven.

Each case names the primitives it is there to exercise; a test asserts that those primitives
really appear in the case's graphs (the function, its JVP or its VJP), and another that every
registered primitive is named by some case, so a new primitive without a test fails here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

import adjit
import adjit.numpy as anp
import adjit.scipy.linalg as asl
import adjit.scipy.special as asp
from adjit.config import config
from adjit.primitives import elementwise as ew
from adjit.primitives.registry import abstract_rules, missing_rules
from adjit.testing import check_grads

# --------------------------------------------------------------------------- input domains


def _any(rng, shape):
    return rng.standard_normal(shape)


def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def _unit(rng, shape):  # inside (-1, 1), away from the ends
    return rng.uniform(-0.8, 0.8, shape)


def _gt1(rng, shape):
    return rng.uniform(1.3, 3.0, shape)


def _nonzero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def _nonint(rng, shape):  # away from integers and half-integers: floor, ceil, round are flat
    return rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.4, shape)


def _distinct(rng, shape):  # no ties, so max/min/sort have one derivative
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.37 + rng.uniform(0, 0.1, n)).reshape(shape) - n * 0.15


def _spd(rng, shape):  # symmetric positive definite (distinct eigenvalues, almost surely)
    x = rng.standard_normal(shape)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


def _wellcond(rng, shape):  # a square matrix with a dominant diagonal: far from singular
    return rng.standard_normal(shape) + shape[-1] * np.eye(shape[-1])


DOMAINS = {"any": _any, "pos": _pos, "unit": _unit, "gt1": _gt1, "nonzero": _nonzero,
           "nonint": _nonint, "distinct": _distinct, "spd": _spd, "wellcond": _wellcond}


class Case(NamedTuple):
    name: str
    fn: object
    args: tuple          # ((shape, domain), ...)
    prims: tuple         # the primitives this case exercises
    tols: dict = {}      # extra check_grads keywords

    def inputs(self, seed=0):
        rng = np.random.default_rng(seed)
        return tuple(DOMAINS[d](rng, s) for s, d in self.args)


CASES: list[Case] = []


def case(name, fn, args, prims, **tols):
    CASES.append(Case(name, fn, tuple(args), tuple(prims.split()), tols))


# Shapes for unary functions, and broadcasting pairs for binary ones.
UNARY_SHAPES = [(), (3,), (2, 3)]
BINARY_SHAPES = [((), ()), ((3,), (3,)), ((), (4,)), ((3, 1), (4,)), ((2, 3), (3,)),
                 ((2, 1, 3), (4, 1))]

# --------------------------------------------------------------------------- elementwise

UNARY = [
    # (name, anp function, domain, primitives)
    ("negative", anp.negative, "any", "neg"),
    ("sin", anp.sin, "any", "sin"),
    ("cos", anp.cos, "any", "cos"),
    ("tan", anp.tan, "unit", "tan"),
    ("arcsin", anp.arcsin, "unit", "asin"),
    ("arccos", anp.arccos, "unit", "acos"),
    ("arctan", anp.arctan, "any", "atan"),
    ("sinh", anp.sinh, "any", "sinh"),
    ("cosh", anp.cosh, "any", "cosh"),
    ("tanh", anp.tanh, "any", "tanh"),
    ("arcsinh", anp.arcsinh, "any", "asinh"),
    ("arccosh", anp.arccosh, "gt1", "acosh"),
    ("arctanh", anp.arctanh, "unit", "atanh"),
    ("exp", anp.exp, "any", "exp"),
    ("expm1", anp.expm1, "any", "expm1"),
    ("log", anp.log, "pos", "log"),
    ("log1p", anp.log1p, "unit", "log1p"),
    ("log2", anp.log2, "pos", "log div"),
    ("log10", anp.log10, "pos", "log div"),
    ("sqrt", anp.sqrt, "pos", "sqrt"),
    ("cbrt", anp.cbrt, "nonzero", "cbrt"),
    ("square", anp.square, "any", "integer_pow"),
    ("reciprocal", anp.reciprocal, "nonzero", "div"),
    ("abs", anp.abs, "nonzero", "abs"),
    ("sign", lambda x: anp.sign(x) * x, "nonzero", "sign mul"),
    ("floor", lambda x: anp.floor(x) * x, "nonint", "floor"),
    ("ceil", lambda x: anp.ceil(x) * x, "nonint", "ceil"),
    ("round", lambda x: anp.round(x) * x, "nonint", "round"),
    ("round_decimals", lambda x: anp.round(x, 1) * x, "nonint", "round"),
    ("clip", lambda x: anp.clip(x, -0.5, 0.5), "distinct", "max min"),
    ("pow_int", lambda x: x ** 3, "any", "integer_pow"),
    ("pow_neg_int", lambda x: x ** -2, "nonzero", "integer_pow div"),
    ("pow_zero", lambda x: x ** 0 + x, "any", "integer_pow"),
    ("pow_float", lambda x: x ** 2.5, "pos", "pow"),
    ("rpow", lambda x: 2.0 ** x, "any", "pow"),
    ("abs_operator", lambda x: abs(x), "nonzero", "abs"),
    ("unary_minus", lambda x: -x, "any", "neg"),
]
for _name, _fn, _dom, _prims in UNARY:
    for _shape in UNARY_SHAPES:
        case(f"{_name}-{_shape}", _fn, [(_shape, _dom)], _prims)

BINARY = [
    ("add", anp.add, "any", "any", "add"),
    ("subtract", anp.subtract, "any", "any", "sub"),
    ("multiply", anp.multiply, "any", "any", "mul"),
    ("divide", anp.divide, "any", "nonzero", "div"),
    ("power", anp.power, "pos", "any", "pow"),
    ("arctan2", anp.arctan2, "nonzero", "nonzero", "atan2"),
    ("maximum", anp.maximum, "distinct", "distinct", "max"),
    ("minimum", anp.minimum, "distinct", "distinct", "min"),
    ("hypot", anp.hypot, "nonzero", "nonzero", "sqrt"),
    ("logaddexp", anp.logaddexp, "distinct", "any", "log1p exp max"),
    ("operators", lambda x, y: (x + y) * (x - y) / (y * y + 1.0), "any", "any", "add sub div"),
]
for _name, _fn, _dx, _dy, _prims in BINARY:
    for _sx, _sy in BINARY_SHAPES:
        case(f"{_name}-{_sx}-{_sy}", _fn, [(_sx, _dx), (_sy, _dy)], _prims)

# Python scalars on either side (weakly typed) and a concrete NumPy array operand.
case("scalar_ops", lambda x: 2.0 * x - 1.5 / (x * x + 1.0) + x / 3 - 4 + x ** 2,
     [((3,), "any")], "mul sub div add")
case("array_const", lambda x: x * np.arange(1.0, 4.0) + np.ones(3), [((3,), "any")], "mul add")
case("maximum_scalar", lambda x: anp.maximum(x, 0.1), [((5,), "any")], "max")
case("maximum_tie", lambda x: anp.maximum(x, x), [((4,), "any")], "max")

# --------------------------------------------------------------------------- comparisons, where

case("where_gt", lambda x, y: anp.where(x > y, x * y, anp.sin(x)),
     [((3, 4), "distinct"), ((4,), "distinct")], "gt select")
case("where_ge", lambda x: anp.where(x >= 0, x, 0.1 * x), [((6,), "nonzero")], "ge select")
case("where_lt", lambda x: anp.where(x < 0.0, x ** 2, x), [((6,), "nonzero")], "lt select")
case("where_le", lambda x: anp.where(anp.less_equal(x, 0.0), 1.0, x), [((6,), "nonzero")],
     "le select")
case("where_eq", lambda x: anp.where(x == x, anp.exp(x), x), [((2, 3), "any")], "eq select")
case("where_ne", lambda x, y: anp.where(x != y, x * y, 0.0), [((3,), "any"), ((), "any")],
     "ne select")
case("where_and_or_not",
     lambda x: anp.where(((x > 0) & (x < 1)) | ~(x > -1), anp.cos(x), x),
     [((8,), "nonzero")], "and or not select")
case("where_logical", lambda x: anp.where(anp.logical_or(anp.logical_not(x > 0.5),
                                                          anp.logical_and(x > 1, x < 2)), x, -x),
     [((8,), "distinct")], "and or not select")
case("where_scalar_cond", lambda x, y: anp.where(y > 0, x, y), [((2, 3), "any"), ((), "pos")],
     "gt select")
case("isfinite", lambda x: anp.where(anp.isfinite(x), x, 0.0), [((3,), "any")], "lt abs select")

# --------------------------------------------------------------------------- reductions

REDUCERS = [
    ("sum", anp.sum, "any", "reduce_sum"),
    ("prod", anp.prod, "nonzero", "reduce_prod"),
    ("max", anp.max, "distinct", "reduce_max"),
    ("min", anp.min, "distinct", "reduce_min"),
    ("mean", anp.mean, "any", "reduce_sum div"),
    ("var", anp.var, "any", "reduce_sum integer_pow"),
    ("std", anp.std, "any", "sqrt reduce_sum"),
    ("logsumexp", anp.logsumexp, "any", "reduce_max exp log stop_gradient"),
]
REDUCE_AXES = [((5,), {}), ((3, 4), {}), ((3, 4), {"axis": 0}), ((3, 4), {"axis": -1}),
               ((2, 3, 4), {"axis": (0, 2)}), ((3, 4), {"axis": 1, "keepdims": True}),
               ((2, 3, 4), {"axis": None, "keepdims": True})]
for _name, _fn, _dom, _prims in REDUCERS:
    for _shape, _kw in REDUCE_AXES:
        case(f"{_name}-{_shape}-{_kw}", lambda x, _fn=_fn, _kw=_kw: _fn(x, **_kw),
             [(_shape, _dom)], _prims)
case("methods", lambda x: x.sum(0) * x.mean(1, keepdims=True) + x.max() - x.min(axis=0)
     + x.prod(1, keepdims=True) + x.var(0) + x.std(), [((3, 4), "distinct")], "reduce_sum")
case("var_ddof", lambda x: anp.var(x, axis=1, ddof=1), [((3, 4), "any")], "reduce_sum")
# A mean over a symbolic length divides by that length, read at run time.
case("shape_size", lambda x: anp.mean(x) * x, [((5,), "any")], "shape_size")
case("argmax", lambda x: x * anp.argmax(x) + x.argmin(), [((5,), "distinct")],
     "argmax argmin")
case("argmax_axis", lambda x: x[anp.argmax(x, axis=0), 0], [((4, 3), "distinct")],
     "argmax take")
case("cumsum", lambda x: anp.cumsum(x, axis=1) * x, [((3, 4), "any")], "cumsum")
case("cumsum_flat", lambda x: x.cumsum() ** 2, [((2, 3), "any")], "cumsum")
case("cumsum_neg_axis", lambda x: anp.sin(anp.cumsum(x, axis=-2)), [((3, 2, 2), "any")], "cumsum")
case("sort", lambda x: anp.sort(x) * anp.arange(5.0), [((5,), "distinct")], "sort argsort take")
for _axis in [0, 1, -1, None]:
    case(f"sort_axis_{_axis}", lambda x, _axis=_axis: anp.sort(x, axis=_axis) ** 3,
         [((3, 4), "distinct")], "sort argsort take")
case("argsort", lambda x: x[anp.argsort(x)] * x, [((4,), "distinct")], "argsort take")
NORMS = [((5,), {}), ((5,), {"ord": 1}), ((5,), {"ord": np.inf}), ((5,), {"ord": 2}),
         ((5,), {"ord": 3}), ((3, 4), {}), ((3, 4), {"ord": 1}), ((3, 4), {"ord": np.inf}),
         ((3, 4), {"ord": "fro"}), ((3, 4), {"axis": 1}), ((3, 4), {"ord": 1, "axis": 0}),
         ((3, 4), {"ord": np.inf, "axis": -1, "keepdims": True}),
         ((3, 4), {"ord": 2, "axis": 0}), ((2, 3, 4), {"axis": (0, 2)})]
for _shape, _kw in NORMS:
    case(f"norm-{_shape}-{_kw}", lambda x, _kw=_kw: anp.linalg.norm(x, **_kw),
         [(_shape, "distinct")], "reduce_sum" if _kw.get("ord") in (None, 2, "fro", 3) else
         "abs reduce_max" if _kw.get("ord") in (1, np.inf) and len(_shape) == 2 and
         "axis" not in _kw else "abs")

# --------------------------------------------------------------------------- products

PRODUCTS = [
    ("dot", anp.dot, [(3,), (3,)], "mul reduce_sum"), ("dot", anp.dot, [(2, 3), (3,)], "matmul"),
    ("dot", anp.dot, [(3,), (3, 4)], "matmul"), ("dot", anp.dot, [(2, 3), (3, 4)], "matmul"),
    ("dot", anp.dot, [(), (3,)], "mul"),
    ("matmul", anp.matmul, [(2, 3), (3, 4)], "matmul"),
    ("matmul", anp.matmul, [(3,), (3, 4)], "matmul"),
    ("matmul", anp.matmul, [(2, 3), (3,)], "matmul"),
    ("matmul", anp.matmul, [(2, 3, 4), (4, 5)], "matmul broadcast_in_dim"),
    ("matmul", anp.matmul, [(2, 3, 4), (4,)], "matmul"),
    ("matmul", anp.matmul, [(2, 1, 2, 3), (4, 3, 2)], "matmul broadcast_in_dim"),
    ("matmul_op", lambda a, b: a @ b, [(2, 3), (3, 2)], "matmul"),
    ("outer", anp.outer, [(3,), (4,)], "mul"), ("outer", anp.outer, [(2, 2), (3,)], "mul"),
    ("inner", anp.inner, [(3,), (3,)], "mul reduce_sum"),
    ("inner", anp.inner, [(2, 3), (4, 3)], "matmul transpose"),
    ("inner", anp.inner, [(2, 3), (3,)], "mul reduce_sum"),
]
for _name, _fn, _shapes, _prims in PRODUCTS:
    case(f"{_name}-{_shapes}", _fn, [(s, "any") for s in _shapes], _prims)
EINSUMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)], "matmul"), ("ij,jk", [(2, 3), (3, 4)], "matmul"),
    ("ij,j->i", [(2, 3), (3,)], "matmul"), ("i,i->", [(3,), (3,)], "mul reduce_sum"),
    ("ij,kj->ki", [(2, 3), (4, 3)], "matmul transpose"), ("ij->ji", [(2, 3)], "transpose"),
    ("ji", [(2, 3)], "transpose"), ("ij->", [(2, 3)], "reduce_sum"),
    ("ii->i", [(3, 3)], "mul reduce_sum"), ("ii", [(3, 3)], "mul reduce_sum"),
    ("i,j->ij", [(2,), (3,)], "mul"), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)], "matmul"),
    ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)], "matmul"),
    ("iij,jk->ik", [(2, 2, 3), (3, 2)], "matmul"),
]
for _spec, _shapes, _prims in EINSUMS:
    case(f"einsum-{_spec}", lambda *xs, _spec=_spec: anp.einsum(_spec, *xs),
         [(s, "any") for s in _shapes], _prims)
case("matmul_chain", lambda a, b: anp.sum(anp.tanh(a @ b) @ b.T), [((2, 3), "any"),
                                                                    ((3, 3), "any")],
     "matmul transpose")

# --------------------------------------------------------------------------- structural

case("reshape", lambda x: anp.reshape(x, (3, 2)) * anp.arange(2.0), [((2, 3), "any")], "reshape")
case("reshape_infer", lambda x: x.reshape(-1, 2) ** 2, [((2, 3), "any")], "reshape")
case("reshape_method", lambda x: x.reshape(6) * x.ravel(), [((3, 2), "any")], "reshape")
case("transpose", lambda x: anp.transpose(x, (2, 0, 1)) * anp.arange(4.0), [((3, 4, 2), "any")],
     "transpose")
case("transpose_T", lambda x, y: x.T * y, [((2, 3), "any"), ((3, 2), "any")], "transpose")
case("swapaxes", lambda x: anp.swapaxes(x, 0, -1) ** 2, [((2, 3), "any")], "transpose")
case("broadcast_to", lambda x: anp.broadcast_to(x, (4, 3)) * anp.arange(12.0).reshape(4, 3),
     [((3,), "any")], "broadcast_in_dim reduce_sum")
case("broadcast_to_ones", lambda x: anp.broadcast_to(x, (2, 3, 4)) ** 2, [((3, 1), "any")],
     "broadcast_in_dim")
case("expand_dims", lambda x: anp.expand_dims(x, 1) * anp.ones((3, 2, 4)), [((3, 4), "any")],
     "reshape broadcast_in_dim")
case("squeeze", lambda x: anp.squeeze(x) * anp.squeeze(x, axis=0)[0], [((1, 3, 1), "any")],
     "reshape")
case("concatenate", lambda x, y: anp.concatenate([x, y, x], axis=1) ** 2,
     [((2, 3), "any"), ((2, 1), "any")], "concatenate slice")
case("concatenate0", lambda x, y: anp.concatenate((x, y)) * anp.arange(7.0),
     [((3,), "any"), ((4,), "any")], "concatenate")
# A part of length 0: the concatenation is a whole-array step, not computed in its reader's nest.
case("concatenate_empty", lambda x: anp.concatenate([x, x[:0], x]) * 2.0, [((3,), "any")],
     "concatenate slice")
case("stack", lambda x, y: anp.stack([x, y], axis=-1) ** 3, [((3,), "any"), ((3,), "any")],
     "concatenate")
case("hstack_vstack", lambda x, y: anp.vstack([x, y]) * anp.hstack([x, y])[:3],
     [((3,), "any"), ((3,), "any")], "concatenate")
case("zeros_ones_full", lambda x: x * anp.ones(3) + anp.zeros((2, 3)) + anp.full((2, 3), 2.5) * x,
     [((3,), "any")], "broadcast_in_dim")
case("zeros_ones_like", lambda x: (x + anp.ones_like(x)) * (x - anp.zeros_like(x) + 2.0),
     [((2, 3), "any")], "broadcast_in_dim")
case("full_traced", lambda x: anp.full((2, 3), x) * x, [((), "any")], "broadcast_in_dim")
case("arange", lambda x: x * anp.arange(4) + anp.arange(1, 2, 0.25) * x, [((4,), "any")],
     "iota")
case("linspace", lambda x: x * anp.linspace(0.0, 1.0, 5), [((5,), "any")], "iota")
case("eye", lambda x: anp.eye(3) @ x + anp.eye(3, 4, k=1) @ anp.ones(4) * x,
     [((3,), "any")], "iota eq")
case("asarray_list", lambda x, y: anp.asarray([x, y, x * y]) ** 2, [((), "any"), ((), "any")],
     "concatenate")
case("asarray_nested", lambda x: anp.sum(anp.asarray([[x[0], x[1]], [x[2], 1.0]]) @ x[:2]),
     [((3,), "any")], "concatenate")
case("astype", lambda x: anp.astype(anp.astype(x, np.float32) * 2.0, np.float64) ** 2,
     [((3,), "any")], "convert_element_type", eps=1e-2)
case("astype_method", lambda x: x.astype(np.float32).astype(float) + x.astype(int) * x,
     [((3,), "nonint")], "convert_element_type", eps=1e-2)

# --------------------------------------------------------------------------- indexing

_IDX = np.array([0, 2, 2, -1])
INDEXING = [
    ("int", lambda x: x[1], (4,), "slice reshape"),
    ("neg_int", lambda x: x[-1] * x[0], (4, 3), "slice"),
    ("slice", lambda x: x[1:3], (5,), "slice pad"),
    ("slice_step", lambda x: x[::2], (5,), "slice pad"),
    ("slice_step_offset", lambda x: x[1:5:3], (7,), "slice pad"),
    ("neg_step", lambda x: x[::-1] * anp.arange(5.0), (5,), "take scatter_add"),
    ("neg_step2", lambda x: x[4:0:-2], (6,), "take"),
    ("neg_bounds", lambda x: x[1:-1] ** 2, (5,), "slice"),
    ("tail", lambda x: x[1:] * 2.0, (5,), "slice pad"),  # pads n - 1 elements: a whole-array step
    ("none", lambda x: x[None] * x[:, None], (3,), "reshape"),
    ("ellipsis", lambda x: x[..., 0] + x[0, ...], (3, 3), "slice"),
    ("mixed", lambda x: x[:, None, 1:] * x[0, ::-1][:2], (3, 3), "slice take"),
    ("int_array", lambda x: x[_IDX] * anp.arange(4.0), (5,), "take scatter_add"),
    ("int_list", lambda x: x[[0, -1]] ** 2, (3, 2), "take scatter_add"),
    ("int_array_axis1", lambda x: x[:, np.array([1, 0, 1])], (2, 3), "take"),
    ("two_arrays", lambda x: x[np.array([0, 1]), np.array([2, 0])] ** 2, (3, 3), "take"),
    ("two_arrays_bcast", lambda x: x[np.array([[0], [1]]), np.array([2, 0, 1])], (2, 3, 2),
     "take"),
    ("int_and_array", lambda x: x[1, np.array([0, 0])], (2, 3), "take"),
    ("at_set", lambda x, v: x.at[1].set(v), (4,), "pad select"),
    ("at_set_slice", lambda x, v: x.at[::2].set(v * 2.0), (5,), "pad"),
    ("at_add", lambda x, v: x.at[_IDX].add(v), (5,), "scatter_add"),
    ("at_add_repeat", lambda x, v: x.at[np.array([0, 0, 2])].add(v * x[1]), (3,), "scatter_add"),
    ("at_set_row", lambda x, v: x.at[1, :].set(v) ** 2, (3, 2), "select"),
    ("at_multiply", lambda x, v: x.at[1:3].multiply(v), (4,), "mul"),
    ("at_get", lambda x, v: x.at[1:].get() * v, (3,), "slice"),
    ("take", lambda x: anp.take(x, _IDX) * anp.arange(4.0), (5,), "take scatter_add"),
    ("take_axis", lambda x: anp.take(x, np.array([[2, 0], [1, 1]]), axis=1) ** 2, (2, 3),
     "take scatter_add"),
    ("take_flat", lambda x: anp.take(x, np.array([5, 0, 3])) ** 2, (2, 3), "take reshape"),
]
_VALUE_SHAPE = {"at_set": (), "at_set_slice": (3,), "at_add": (4,), "at_add_repeat": (3,),
                "at_set_row": (2,), "at_multiply": (), "at_get": ()}
for _name, _fn, _shape, _prims in INDEXING:
    _args = [(_shape, "any")]
    if _name in _VALUE_SHAPE:
        _args.append((_VALUE_SHAPE[_name], "any"))
    case(f"index_{_name}", _fn, _args, _prims)

# Special functions, through adjit.scipy.special.
case("expit", asp.expit, [((3,), "any")], "logistic")
case("erf", asp.erf, [((3,), "any")], "erf")
case("gammaln", asp.gammaln, [((3,), "pos")], "lgamma digamma")
case("digamma", asp.digamma, [((3,), "pos")], "digamma polygamma")
case("polygamma", lambda x: asp.polygamma(2, x), [((3,), "pos")], "polygamma")
case("scipy_logsumexp", lambda x: asp.logsumexp(x, axis=1) + asp.logsumexp(x, b=x * x),
     [((2, 3), "nonzero")], "reduce_max exp log")
case("stop_gradient", lambda x: x + adjit.stop_gradient(x) - anp.stop_gradient(x),
     [((3,), "any")], "stop_gradient")


# Custom rules (adjit.custom): the call primitives, and forward mode through a custom_vjp,
# whose tangent is custom_vjp_lin (bwd transposed).
@adjit.custom_jvp
def _softplus(x):
    return anp.log1p(anp.exp(x))


_softplus.defjvp(lambda p, t: (_softplus(p[0]), t[0] * ew.logistic(p[0])))


@adjit.custom_vjp
def _sin_times(x, y):
    return anp.sin(x) * y


_sin_times.defvjp(lambda x, y: (anp.sin(x) * y, (x, y)),
                  lambda r, ct: (ct * anp.cos(r[0]) * r[1], ct * anp.sin(r[0])))
case("custom_jvp", _softplus, [((3,), "any")], "custom_jvp_call")
case("custom_vjp", _sin_times, [((3,), "any"), ((3,), "any")], "custom_vjp_call")
case("custom_vjp_forward", lambda x, y: adjit.jvp(_sin_times, (x, y), (y, x))[1],
     [((3,), "any"), ((3,), "any")], "custom_vjp_lin")

# --------------------------------------------------------------------------- tests

# --------------------------------------------------------------------------- control flow


def _cond(x, y):
    return adjit.cond(anp.sum(x) > 0, lambda a, b: anp.sin(a) * b, lambda a, b: a - anp.cos(b),
                      x, y)


def _switch(x):
    # The branch taken depends on the data; no ties, so a small step keeps it.
    return adjit.switch(anp.argmax(x), [lambda a: a * a, anp.exp, lambda a: anp.sin(a) + a], x)


def _scan(xs, c):
    def step(carry, x):
        return carry * anp.cos(x) + x * x, anp.sin(carry) * x

    carry, ys = adjit.scan(step, c, xs)
    return carry + anp.sum(ys, axis=0)


def _scan_reverse(xs, c):
    carry, ys = adjit.scan(lambda a, x: (a + anp.tanh(x) * a, a * x), c, xs, reverse=True)
    return ys * carry


def _fori_loop(x):
    return adjit.fori_loop(0, 3, lambda i, v: v * 0.9 + anp.sin(v) * i, x)


def _while_loop(x):
    def body(carry):
        i, v = carry
        return i + 1, v * 0.5 + anp.sin(v)

    return adjit.while_loop(lambda carry: carry[0] < 3, body, (0, x))[1]


case("cond", _cond, [((3,), "any"), ((3,), "any")], "cond")
case("switch", _switch, [((3,), "distinct")], "cond")
case("scan", _scan, [((4, 3), "any"), ((3,), "any")], "scan")
case("scan_reverse", _scan_reverse, [((5,), "any"), ((), "any")], "scan")
case("fori_loop", _fori_loop, [((2, 3), "any")], "scan")
case("checkpoint", lambda x, y: adjit.checkpoint(lambda a, b: anp.sin(a) * anp.exp(b) + a)(x, y),
     [((3,), "any"), ((3,), "any")], "remat")
# Reverse mode runs a Revolve sweep; order 2 differentiates the sweep in both modes.
case("scan_binomial", lambda x: adjit.fori_loop(0, 6, lambda i, v: v * anp.cos(v), x,
                                               checkpoint="binomial", snapshots=2),
     [((3,), "any")], "revolve")
case("while_loop", _while_loop, [((3,), "any")], "while revolve")

# --------------------------------------------------------------------------- special functions
# (adjit.primitives.special; the incomplete gamma and beta functions differentiated in x only)
case("gamma", asp.gamma, [((3,), "pos")], "gamma digamma")
case("erfc", asp.erfc, [((3,), "any")], "erfc")
case("erfcx", asp.erfcx, [((3,), "any")], "erfcx")
case("erfinv", asp.erfinv, [((3,), "unit")], "erfinv")
case("ndtri", lambda x: asp.ndtri(0.5 + 0.4 * x), [((3,), "unit")], "ndtri")
case("i0e", asp.i0e, [((3,), "nonzero")], "i0e i1e")  # nonzero: a kink at 0 (|x|)
case("i1e", asp.i1e, [((3,), "nonzero")], "i1e i0e")
case("j0", asp.j0, [((3,), "any")], "j0 j1")
case("j1", asp.j1, [((3,), "any")], "j1 j0")
case("y0", asp.y0, [((3,), "pos")], "y0 y1")
case("y1", asp.y1, [((3,), "pos")], "y1 y0")
case("gammainc", lambda x: asp.gammainc(2.5, x) + asp.gammaincc(1.5, x), [((3,), "pos")],
     "gammainc gammaincc")
# In a to first order only (gammainc_da has no derivative in a); gammainc_da's rule in x to
# second order.
case("gammainc_a", lambda a, x: asp.gammainc(a, x) * asp.gammaincc(a, x), [((3,), "pos")] * 2,
     "gammainc gammaincc gammainc_da digamma", order=1)
case("gammainc_da", lambda x: adjit.jvp(lambda a: asp.gammainc(a, x), (anp.ones(3) * 1.7,),
                                        (anp.ones(3),))[1], [((3,), "pos")], "gammainc_da")
case("betainc", lambda x: asp.betainc(2.5, 1.5, 0.5 + 0.4 * x), [((3,), "unit")], "betainc")
case("gammaincinv", lambda a, y: asp.gammaincinv(1.5 + a, 0.5 + 0.4 * y),
     [((3,), "pos"), ((3,), "unit")], "gammaincinv gammainc_da", order=1)
case("betaincinv", lambda y: asp.betaincinv(2.5, 1.5, 0.5 + 0.4 * y), [((3,), "unit")],
     "betaincinv")

# --------------------------------------------------------------------------- linear algebra
# Eigenvectors and singular vectors enter squared: their signs are arbitrary (LAPACK's choice),
# and a function of them that does not depend on the signs has one derivative. Each case
# returns one array (test_compiled draws one cotangent). Stacks of matrices, the wide SVD and
# the functions built over these are checked in tests/test_linalg.py (compiling second
# derivatives of these is slow, so the table holds one case per primitive and branch).


def _eigh(a):
    w, v = anp.linalg.eigh(a)
    return anp.expand_dims(w, -2) + v * v


def _svd(a):
    u, s, vh = anp.linalg.svd(a, full_matrices=False)
    return anp.matmul(u * u * anp.expand_dims(s, -2), vh * vh)


def _qr(a):
    q, r = anp.linalg.qr(a)
    return anp.concatenate([q, r], axis=-2)


case("cholesky", anp.linalg.cholesky, [((3, 3), "spd")], "cholesky triangular_solve")
case("solve_triangular", lambda a, b: asl.solve_triangular(a, b, lower=True),
     [((3, 3), "wellcond"), ((3, 2), "any")], "triangular_solve")
case("solve_triangular-upper-trans-unit", lambda a, b: asl.solve_triangular(
    a, b, trans=1, unit_diagonal=True), [((3, 3), "wellcond"), ((3,), "any")],
    "triangular_solve")
case("solve", anp.linalg.solve, [((3, 3), "wellcond"), ((3, 2), "any")], "solve")
case("inv", anp.linalg.inv, [((3, 3), "wellcond")], "solve")
case("det", anp.linalg.det, [((3, 3), "wellcond")], "slogdet solve")
case("slogdet", lambda a: anp.linalg.slogdet(a)[1], [((3, 3), "wellcond")], "slogdet")
case("eigh", _eigh, [((3, 3), "spd")], "eigh")
case("svd-tall", _svd, [((4, 3), "any")], "svd")
case("qr", _qr, [((4, 3), "any")], "qr triangular_solve")


# --------------------------------------------------------------------------- complex numbers
# Real inputs and outputs around complex intermediates, so check_grads applies; the complex
# conventions of grad are checked against JAX in tests/test_complex.py.


def _z(x, y):
    return ew.complex_p(x, y)


case("complex_parts", lambda x, y: anp.real(_z(x, y) * _z(y, x)) + anp.imag(_z(x, y) ** 3),
     [((3,), "any"), ((3,), "any")], "complex real imag mul integer_pow")
case("complex_conj", lambda x, y: anp.imag(anp.conj(_z(x, y)) * _z(y, x) / _z(x, 0.5 * y)),
     [((3,), "nonzero"), ((3,), "nonzero")], "conj div")
case("complex_abs", lambda x, y: anp.abs(_z(x, y)) + anp.angle(_z(x, y)),
     [((2, 3), "nonzero"), ((2, 3), "nonzero")], "abs atan2")
case("complex_transcendental",
     lambda x, y: anp.real(anp.sin(_z(x, y)) * anp.exp(_z(y, x)) + anp.log(_z(x, y))
                           + anp.sqrt(_z(x, y)) * anp.tanh(_z(x, y))),
     [((3,), "pos"), ((3,), "unit")], "sin exp log sqrt tanh")
case("complex_embed", lambda x: anp.real(anp.sum((x * (1 + 2j)) ** 2)),
     [((2, 3), "any")], "convert_element_type reduce_sum")

# --------------------------------------------------------------------------- FFT

case("fft", lambda x, y: anp.real(anp.fft.fft(_z(x, y))) * y + anp.imag(anp.fft.ifft(_z(y, x))),
     [((2, 5), "any"), ((2, 5), "any")], "fft")
case("fft2_ortho", lambda x, y: anp.imag(anp.fft.ifft2(_z(x, y), norm="ortho") ** 2),
     [((2, 4), "any"), ((2, 4), "any")], "fft")
case("rfft", lambda x: anp.real(anp.fft.rfft(x, n=6)) + anp.imag(anp.fft.rfft(x, n=6)) ** 2,
     [((2, 5), "any")], "fft")
case("irfft", lambda x, y: anp.fft.irfft(_z(x, y), n=6) + anp.fft.irfft(_z(y, x), n=7)[:, 1:] ** 2,
     [((2, 4), "any"), ((2, 4), "any")], "fft")
case("rfftn", lambda x: anp.fft.irfftn(anp.fft.rfftn(x) * anp.fft.rfftn(x), s=(3, 4)),
     [((3, 4), "any")], "fft")


def forward_only(c) -> bool:
    return "rev" not in c.tols.get("modes", ("fwd", "rev"))


def first_order_only(c) -> bool:
    return c.tols.get("order", 2) == 1


@pytest.fixture(autouse=True)
def _reference_interpreter(monkeypatch):
    # The rules are checked here, run by the reference interpreter: compiling a kernel for
    # each of the thousands of graphs these checks build would take minutes. The compiled
    # backend is tested against the interpreter in its own tests.
    monkeypatch.setattr(config, "jit", False)


def _ids(cases):
    return [c.name for c in cases]


@pytest.mark.parametrize("c", CASES, ids=_ids(CASES))
def test_grads(c):
    check_grads(c.fn, c.inputs(), **{"order": 2, **c.tols})


def _prims_in(graph, out=None):
    out = set() if out is None else out
    for eqn in graph.eqns:
        out.add(eqn.prim)
    return out


def _case_prims(c) -> set[str]:
    """The primitives in the graphs of a case's function, its JVP and its VJP."""
    args = c.inputs()
    seen = _prims_in(adjit.make_graph(c.fn)(*args))
    seen |= _prims_in(adjit.make_graph(lambda *xs: adjit.jvp(c.fn, xs, xs))(*args))
    if forward_only(c):
        return seen
    out = adjit.jit(c.fn)(*args)
    seen |= _prims_in(adjit.make_graph(lambda *xs: adjit.vjp(c.fn, *xs)[1](out))(*args))
    return seen


@pytest.mark.parametrize("c", CASES, ids=_ids(CASES))
def test_case_exercises_its_primitives(c):
    missing = set(c.prims) - _case_prims(c)
    assert not missing, f"{c.name} does not reach {missing}"


def test_no_missing_rules():
    assert missing_rules() == {}


def test_every_primitive_has_a_case():
    covered = {p for c in CASES for p in c.prims}
    untested = set(abstract_rules) - covered
    assert not untested, f"primitives without a test case: {sorted(untested)}"
    unknown = covered - set(abstract_rules)
    assert not unknown, f"test cases name unknown primitives: {sorted(unknown)}"


def test_stop_gradient_has_zero_derivative():
    g = adjit.grad(lambda x: x * adjit.stop_gradient(x))(3.0)
    assert g == 3.0
    g = adjit.grad(lambda x: anp.sum(anp.stop_gradient(x) * anp.sin(x)))(np.array([0.0, 1.0]))
    np.testing.assert_allclose(g, np.array([0.0, 1.0]) * np.cos([0.0, 1.0]))


def test_values_match_numpy():
    # The forward values of the NumPy layer agree with NumPy itself.
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (4,))
    for name in ["sin", "cos", "tan", "arctan", "sinh", "cosh", "tanh", "arcsinh", "exp",
                 "expm1", "log", "log1p", "log2", "log10", "sqrt", "cbrt", "square", "reciprocal",
                 "abs", "sign", "floor", "ceil", "round", "negative"]:
        np.testing.assert_allclose(adjit.jit(getattr(anp, name))(x), getattr(np, name)(x),
                                   err_msg=name)
    for name in ["add", "subtract", "multiply", "divide", "power", "arctan2", "maximum",
                 "minimum", "hypot", "logaddexp", "greater", "less_equal", "equal"]:
        np.testing.assert_allclose(adjit.jit(getattr(anp, name))(x, y), getattr(np, name)(x, y),
                                   err_msg=name)
    for name in ["sum", "prod", "max", "min", "mean", "var", "std"]:
        for kw in [{}, {"axis": 1}, {"axis": 0, "keepdims": True}]:
            np.testing.assert_allclose(adjit.jit(lambda a: getattr(anp, name)(a, **kw))(x),
                                       getattr(np, name)(x, **kw), err_msg=f"{name} {kw}")
    np.testing.assert_allclose(adjit.jit(anp.logsumexp)(x), np.log(np.sum(np.exp(x))))
    np.testing.assert_allclose(adjit.jit(lambda a: a[::-2, [0, 2]])(x), x[::-2, [0, 2]])
    np.testing.assert_allclose(adjit.jit(lambda a: a.at[[0, 0], 1].add(1.0))(x),
                               _np_add_at(x, ([0, 0], 1), 1.0))
    np.testing.assert_allclose(adjit.jit(lambda a: a * anp.linspace(0.0, 1.0, 7))(1.0),
                               np.linspace(0.0, 1.0, 7))


def _np_add_at(x, idx, v):
    x = x.copy()
    np.add.at(x, idx, v)
    return x


def test_special_function_values():
    import math

    x = np.array([0.5, 1.0, 2.5])
    np.testing.assert_allclose(ew.lgamma(x), [math.lgamma(v) for v in x])
    np.testing.assert_allclose(ew.erf(x), [math.erf(v) for v in x])
    np.testing.assert_allclose(ew.logistic(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(ew.digamma(np.array([1.0])), [-0.5772156649015329])
    np.testing.assert_allclose(ew.polygamma(np.array([1.0, 0.5]), m=1),
                               [math.pi ** 2 / 6, math.pi ** 2 / 2])
    np.testing.assert_allclose(ew.polygamma(np.array([1.0]), m=2), [-2 * 1.2020569031595942])
