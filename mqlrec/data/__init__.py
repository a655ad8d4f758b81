"""Data layer: one Dataset type, readers for the MQL4GRec / LC-Rec / raw Amazon formats, synthetic default."""

from mqlrec.data.dataset import Dataset, DataError, Split
from mqlrec.data.index_files import read_index, write_index

__all__ = ["Dataset", "DataError", "Split", "read_index", "write_index"]
