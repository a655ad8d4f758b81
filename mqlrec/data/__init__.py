"""Data layer: one Dataset type, readers for the MQL4GRec / LC-Rec / raw Amazon formats, synthetic default."""

from mqlrec.data.dataset import Dataset, DataError, Split
from mqlrec.data.embeddings import embedding_path, load_embedding
from mqlrec.data.index_files import read_index, write_index
from mqlrec.data.mqlrec_format import load_dataset, write_mqlrec
from mqlrec.data.split import leave_one_out

__all__ = [
    "Dataset",
    "DataError",
    "Split",
    "embedding_path",
    "leave_one_out",
    "load_dataset",
    "load_embedding",
    "read_index",
    "write_index",
    "write_mqlrec",
]
