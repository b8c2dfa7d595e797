"""``einsum`` from transposes, reshapes, broadcasting multiplies, sums and matrix products, so
its derivatives and batching come from those primitives' rules.

A letter repeated within one operand takes that operand's diagonal (a product with an identity
mask, summed); a letter in one operand only and not in the output is summed out first. More
than two operands are contracted pairwise, the pair with the smallest result first. Two
operands that contract one letter, each with a letter of its own, are a product of stacks of
matrices (``matmul``, which the CPU runs as BLAS calls on views of the operands, or as loops
for small matrices), unless the contracted letter is at most ``SMALL_CONTRACTION`` long;
anything else is one broadcast product summed over the contracted letters (fused into a single
loop by the compiler).

An ellipsis (``...``) stands for the axes an operand has beyond its named ones, broadcast
against each other from the right; each gets a letter of its own before parsing. The sublist
form (``einsum(a, [0, 1], b, [1, 2], [0, 2])``) is rewritten as the equivalent string.
"""

from __future__ import annotations

import math
import string

from adjit.errors import AdjitValueError
from adjit.ir.graph import is_symbolic, same_shape, size_hint
from adjit.numpy import core as anp
from adjit.primitives import structural as st
from adjit.primitives.linalg import swap_last
from adjit.trace import get_aval


def _parse(subscripts: str, n_operands: int):
    spec = subscripts.replace(" ", "")
    if "->" in spec:
        inputs, output = spec.split("->")
    else:
        # Implicit output: the letters that appear once, in alphabetical order (NumPy's rule).
        inputs = spec
        letters = inputs.replace(",", "")
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    in_specs = inputs.split(",")
    if len(in_specs) != n_operands:
        raise AdjitValueError(f"adjit.numpy.einsum: '{subscripts}' names {len(in_specs)} "
                              f"operands, got {n_operands}")
    for c in inputs.replace(",", "") + output:
        if not c.isalpha():
            raise AdjitValueError(f"adjit.numpy.einsum: invalid subscript {c!r} in "
                                  f"'{subscripts}'")
    if len(set(output)) != len(output):
        raise AdjitValueError(f"adjit.numpy.einsum: output subscripts of '{subscripts}' "
                              "repeat a letter")
    missing = set(output) - set(inputs)
    if missing:
        raise AdjitValueError(f"adjit.numpy.einsum: output letters {sorted(missing)} of "
                              f"'{subscripts}' appear in no operand")
    return in_specs, output


def _diagonal(x, spec: str):
    """Take the diagonal for each letter repeated in ``spec``: (x, spec with each letter once)."""
    while True:
        repeated = next((c for c in spec if spec.count(c) > 1), None)
        if repeated is None:
            return x, spec
        a = spec.index(repeated)
        b = spec.index(repeated, a + 1)
        shape = anp.shape(x)
        if not same_shape((shape[a],), (shape[b],)):
            raise AdjitValueError(f"adjit.numpy.einsum: letter {repeated!r} has lengths "
                                  f"{shape[a]} and {shape[b]} in one operand")
        mask = anp.eye(shape[a], dtype=get_aval(x).dtype)
        mask = anp.reshape(mask, [shape[a] if i in (a, b) else 1 for i in range(len(shape))])
        x = anp.sum(anp.multiply(x, mask), axis=b)
        spec = spec[:b] + spec[b + 1:]


def _from_sublists(args):
    """(subscripts, operands) of the sublist form: operand, sublist, ..., [output sublist]."""
    args = list(args)
    output = args.pop() if len(args) % 2 else None
    operands, sublists = args[0::2], args[1::2]

    def letters(sublist):
        out = []
        for item in sublist:
            if item is Ellipsis:
                out.append("...")
            elif isinstance(item, int) and 0 <= item < len(string.ascii_letters):
                out.append(string.ascii_letters[item])
            else:
                raise AdjitValueError(f"adjit.numpy.einsum: subscript {item!r} in a sublist "
                                      f"must be an integer in [0, {len(string.ascii_letters)})"
                                      " or Ellipsis")
        return "".join(out)

    subscripts = ",".join(letters(s) for s in sublists)
    if output is not None:
        subscripts += "->" + letters(output)
    return subscripts, operands


def _expand_ellipsis(subscripts: str, ndims) -> str:
    """``subscripts`` with each ``...`` replaced by letters of their own, aligned from the
    right across operands (so they broadcast), and an explicit output."""
    spec = subscripts.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    in_specs = inputs.split(",")
    for part in in_specs + [output]:
        if part.replace("...", "").count(".") or part.count("...") > 1:
            raise AdjitValueError(f"adjit.numpy.einsum: invalid ellipsis in '{subscripts}' "
                                  "(one '...' per operand)")
    if len(in_specs) != len(ndims):
        return spec  # _parse reports the count
    counts = []
    for part, nd in zip(in_specs, ndims):
        named = len(part.replace("...", ""))
        if "..." in part and nd < named:
            raise AdjitValueError(f"adjit.numpy.einsum: operand '{part}' has rank {nd}")
        counts.append(nd - named if "..." in part else 0)
    free = [c for c in string.ascii_letters if c not in spec]
    broadcast = "".join(free[:max(counts, default=0)])
    in_specs = [part.replace("...", broadcast[len(broadcast) - n:]) if "..." in part else part
                for part, n in zip(in_specs, counts)]
    if arrow:
        if broadcast and "..." not in output:
            raise AdjitValueError(f"adjit.numpy.einsum: output of '{subscripts}' has no '...' "
                                  "for the axes the operands' ellipses stand for")
        output = output.replace("...", broadcast)
    else:  # implicit: the broadcast axes first, then the letters named once, sorted
        letters = "".join(in_specs)
        output = broadcast + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                            and c not in broadcast))
    return ",".join(in_specs) + "->" + output


def einsum(*args, optimize=False):
    """NumPy's einsum, subscripts string or sublist form. ``optimize`` is accepted for NumPy's
    signature: the contraction order is always the greedy one."""
    if not args:
        raise AdjitValueError("adjit.numpy.einsum needs subscripts and operands")
    if isinstance(args[0], str):
        subscripts, operands = args[0], args[1:]
    else:
        subscripts, operands = _from_sublists(args)
    if not operands:
        raise AdjitValueError("adjit.numpy.einsum needs at least one operand")
    arrays = [anp.asarray(x) for x in operands]
    if "." in subscripts:
        subscripts = _expand_ellipsis(subscripts, [anp.ndim(x) for x in arrays])
    in_specs, output = _parse(subscripts, len(operands))
    dtype = anp._result_dtype(*arrays)
    arrays = [anp.astype(x, dtype) for x in arrays]

    sizes: dict = {}
    terms = []
    for x, spec in zip(arrays, in_specs):
        if anp.ndim(x) != len(spec):
            raise AdjitValueError(f"adjit.numpy.einsum: operand '{spec}' has rank "
                                  f"{anp.ndim(x)}")
        x, spec = _diagonal(x, spec)
        for c, d in zip(spec, anp.shape(x)):
            known = sizes.get(c)
            if known is None or (not is_symbolic(known) and known == 1):
                sizes[c] = d
            elif not same_shape((known,), (d,)) and (is_symbolic(d) or d != 1):
                raise AdjitValueError(f"adjit.numpy.einsum: letter {c!r} has lengths {known} "
                                      f"and {d} in '{subscripts}'")
        terms.append([x, spec])

    # Letters in one operand only and not in the output are summed out at once.
    for k, (x, spec) in enumerate(terms):
        elsewhere = set(output).union(*(s for j, (_, s) in enumerate(terms) if j != k))
        alone = [i for i, c in enumerate(spec) if c not in elsewhere]
        if alone:
            terms[k] = [anp.sum(x, axis=tuple(alone)),
                        "".join(c for c in spec if c in elsewhere)]

    # Pairwise, the pair with the smallest result first (NumPy's greedy order): a chain of
    # products costs the sum of its steps, not the product of all its lengths.
    while len(terms) > 2:
        best = None
        for i in range(len(terms)):
            for j in range(i + 1, len(terms)):
                keep = _kept(terms, i, j, output)
                size = math.prod(size_hint(sizes[c]) for c in keep)
                if best is None or size < best[0]:
                    best = (size, i, j, keep)
        _, i, j, keep = best
        pair = _contract([terms[i], terms[j]], keep, sizes)
        terms = [t for k, t in enumerate(terms) if k not in (i, j)] + [[pair, keep]]
    return _contract(terms, output, sizes)


def _kept(terms, i: int, j: int, output: str) -> str:
    """The letters of terms i and j that the output or another term needs, in order."""
    others = set(output).union(*(s for k, (_, s) in enumerate(terms) if k not in (i, j)))
    return "".join(dict.fromkeys(c for c in terms[i][1] + terms[j][1] if c in others))


def _contract(terms, output: str, sizes):
    """One or two terms contracted into ``output``'s letters: a product of stacks of matrices
    where it is one (``_as_matmul``), else one broadcast product over every letter (output
    letters first) summed over the rest, which the compiler fuses into one loop nest."""
    if len(terms) == 2:
        out = _as_matmul(terms, output, sizes)
        if out is not None:
            return out
    letters = list(output) + sorted(set("".join(s for _, s in terms)) - set(output))
    product = None
    for x, spec in terms:
        length = dict(zip(spec, anp.shape(x)))
        x = anp.transpose(x, [spec.index(c) for c in letters if c in spec]) if spec else x
        x = anp.reshape(x, [length.get(c, 1) for c in letters])
        product = x if product is None else anp.multiply(product, x)
    contracted = tuple(range(len(output), len(letters)))
    out = anp.sum(product, axis=contracted) if contracted else product
    return anp.broadcast_to(out, [sizes[c] for c in output])


# A letter of at most this known length is contracted as a broadcast product summed (one fused
# loop nest with the work around it), not by BLAS: ADBench's GMM gradient, whose einsum
# contracts over the dimension d, took (ms, one core) at d=2, K=200, n=1000 3.1 against 4.1; at
# d=3, K=50 1.1 against 1.7; at d=4, K=50 1.7 against 1.2 by BLAS.
SMALL_CONTRACTION = 3


def _as_matmul(terms, output: str, sizes):
    """Two operands contracting one letter, as ``matmul``: letters in both operands and the
    output are batch axes; each operand's last free letter (in its own order, so that it is
    likelier one of its last two axes) is a matrix axis, its other free letters batch axes
    along which the other operand is broadcast. Each operand is a view of the input (batch
    axes first, the two matrix axes in the input's order, then swapped if need be): where
    the matrix axes are the input's last two, the CPU lowering reads the input as it is, else
    it copies it once (``fusion.stacked_matrices``). None where the letter is short
    (``SMALL_CONTRACTION``), where one operand has no free letter
    (a matrix-vector product per batch: the fused loop reads each operand once, as a gemv
    would) or where no single letter is contracted (an outer product, or several letters
    whose lengths, symbolic, cannot be multiplied into one axis)."""
    (a, sa), (b, sb) = terms
    contracted = [c for c in sa if c in sb and c not in output]
    if len(contracted) != 1:
        return None
    (c,) = contracted
    lengths = (anp.shape(a)[sa.index(c)], anp.shape(b)[sb.index(c)])
    if not same_shape(lengths[:1], lengths[1:]) or any(
            not is_symbolic(n) and n <= SMALL_CONTRACTION for n in lengths):
        return None
    free_a, free_b = [x for x in sa if x not in sb], [x for x in sb if x not in sa]
    if not free_a or not free_b:
        return _as_matrix_vector(terms, c, output) if not set(sa) & set(sb) - {c} else None
    if output[-1] in free_a:
        # The product's last axis is the output's: putting the stack in the output's order
        # then copies runs along that axis, not a strided gather.
        (a, sa), (b, sb), free_a, free_b = (b, sb), (a, sa), free_b, free_a
    m, n = free_a[-1], free_b[-1]
    lead = [x for x in output if x not in (m, n)]
    out = anp.matmul(_stack(a, sa, lead, (m, c), sizes), _stack(b, sb, lead, (c, n), sizes))
    got = lead + [m, n]
    return anp.transpose(out, [got.index(x) for x in output])


def _stack(x, spec: str, lead: list, matrix: tuple, sizes):
    """``x`` as a stack of matrices: axes ``lead`` (broadcast where ``x`` lacks them), then the
    two letters ``matrix``."""
    mine = [c for c in lead if c in spec]
    order = mine + sorted(matrix, key=spec.index)
    x = anp.transpose(x, [spec.index(c) for c in order])
    shape = anp.shape(x)
    x = st.broadcast_in_dim(x, [*(sizes[c] for c in lead), *shape[-2:]],
                            [*(lead.index(c) for c in mine), len(lead), len(lead) + 1])
    return x if order[-2:] == list(matrix) else swap_last(x)


def _as_matrix_vector(terms, c: str, output: str):
    """A matrix or vector product of two operands without batch letters, as ``matmul``."""
    (a, sa), (b, sb) = terms
    free_a, free_b = [x for x in sa if x != c], [x for x in sb if x != c]
    if len(free_a) > 1 or len(free_b) > 1:
        return None
    a = anp.transpose(a, [sa.index(x) for x in (*free_a, c)])
    b = anp.transpose(b, [sb.index(x) for x in (c, *free_b)])
    out = anp.matmul(a, b)
    got = "".join(free_a + free_b)
    return anp.transpose(out, [got.index(x) for x in output]) if len(got) > 1 else out
