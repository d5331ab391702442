"""Read a pandas DataFrame pickle without running code from it.

`pickle` calls whatever global a file names (`os.system`, `builtins.open`, `subprocess.Popen`...), so a data file
could run code on load. `read_frame_pickle` resolves only the globals on `ALLOWED`: what the constructors of a
DataFrame of numeric, bool, datetime, str and object columns (lists, numpy arrays, Python scalars) need, in
pickles written by pandas 1.x to 3.x with numpy 1.x or 2.x, protocols 0 to 5. Anything else is refused with one
line naming the file and the global; nothing named by the file is imported or called before that check.

The list was built by recording the globals of such pickles (the CoLLM/BinLLM `*_ood2.pkl` files, written by
pandas 1.x, and frames pickled here with every protocol) and keeping the data constructors among them.
"""
from __future__ import annotations

import io
import pickle

import pandas as pd

from llmrec.errors import LlmrecError

ALLOWED: frozenset[tuple[str, str]] = frozenset({
    # builtins: slices address blocks; bytes under protocol 2 are rebuilt by codecs.encode(str, 'latin1')
    ("builtins", "slice"), ("builtins", "bytearray"), ("builtins", "bytes"), ("builtins", "complex"),
    ("builtins", "frozenset"), ("builtins", "set"), ("builtins", "object"), ("_codecs", "encode"),
    ("datetime", "timezone"), ("datetime", "timedelta"),  # time zones of tz-aware datetime columns
    ("copyreg", "_reconstructor"),  # protocols 0 and 1 rebuild objects with it; the class itself is checked
    # numpy: arrays, dtypes, scalars
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
    # pandas: frame, block manager, blocks, indexes, string/datetime arrays and their dtypes
    ("pandas.core.frame", "DataFrame"), ("pandas", "DataFrame"),
    ("pandas.core.series", "Series"), ("pandas", "Series"),
    ("pandas.core.internals.managers", "BlockManager"), ("pandas.core.internals.managers", "SingleBlockManager"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"), ("pandas.core.indexes.base", "Index"), ("pandas", "Index"),
    ("pandas.core.indexes.range", "RangeIndex"), ("pandas", "RangeIndex"),
    ("pandas.core.indexes.multi", "MultiIndex"), ("pandas", "MultiIndex"),
    ("pandas.core.indexes.datetimes", "DatetimeIndex"), ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
    ("pandas", "DatetimeIndex"),
    ("pandas.core.arrays.datetimes", "DatetimeArray"), ("pandas.arrays", "DatetimeArray"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"), ("pandas._libs.tslibs.timestamps", "Timestamp"),
    ("pandas._libs.tslibs.nattype", "_nat_unpickle"),
    ("pandas.core.dtypes.dtypes", "DatetimeTZDtype"), ("pandas", "DatetimeTZDtype"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),  # the class it rebuilds is itself checked
    ("pandas.core.arrays.string_", "StringDtype"), ("pandas", "StringDtype"),
    ("pandas.core.arrays.string_", "StringArray"), ("pandas.arrays", "StringArray"),
    ("pandas.core.arrays.string_arrow", "ArrowStringArray"), ("pandas.arrays", "ArrowStringArray"),
    ("pandas.core.arrays.string_arrow", "ArrowStringArrayNumpySemantics"),
    ("pandas.core.arrays.numpy_", "NumpyExtensionArray"), ("pandas.arrays", "NumpyExtensionArray"),
    # pyarrow: the buffers behind pandas 3's default str columns
    ("pyarrow.lib", "_restore_array"), ("pyarrow.lib", "py_buffer"), ("pyarrow.lib", "type_for_alias"),
})
# Old spellings of allowed names, mapped before the check (pickles name the module that defined the global).
_RENAMED_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "numpy.core.multiarray": "numpy._core.multiarray",
                    "numpy.core.numeric": "numpy._core.numeric"}
_RENAMED = {  # pandas 1.x locations (pandas' own compatibility table for the moves it made)
    ("pandas.core.internals.blocks", "new_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas._libs.tslibs.nattype", "__nat_unpickle"): ("pandas._libs.tslibs.nattype", "_nat_unpickle"),
}


class _Refused(Exception):
    """A global outside ALLOWED (kept apart from load errors, whose types a crafted file could choose)."""


class FrameUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only the globals on `ALLOWED` (after mapping old names)."""

    def find_class(self, module: str, name: str):
        key = (_RENAMED_MODULES.get(module, module), name)
        key = _RENAMED.get(key, key)
        if key not in ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(*key)

    def persistent_load(self, pid):
        raise _Refused(f"persistent id {str(pid)[:40]!r}")


def read_frame_pickle(raw: bytes, where: str) -> pd.DataFrame:
    """The DataFrame pickled in `raw` (bytes of the file `where`); LlmrecError for anything else."""
    try:
        obj = FrameUnpickler(io.BytesIO(raw)).load()
    except _Refused as exc:
        raise LlmrecError(f"{where}: refused to load: the pickle names {exc}, which is not a pandas/numpy data "
                          "type (pickles can run code; only DataFrames of plain columns are read)") from None
    except Exception as exc:  # noqa: BLE001 only allowed constructors ran: any failure means a bad file
        # (truncation, bad opcodes, wrong constructor arguments: pickle, numpy, pandas and pyarrow errors alike)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise LlmrecError(f"{where}: not a readable pandas pickle ({type(exc).__name__}: {first})") from None
    if not isinstance(obj, pd.DataFrame):
        raise LlmrecError(f"{where}: expected a pandas DataFrame, found {type(obj).__name__}")
    return obj
