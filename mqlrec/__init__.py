"""mqlrec: multimodal generative recommendation (MQL4GRec, MACRec) with a performance-engineered core."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy so that `import mqlrec` stays cheap (no torch/transformers import at package load).
    if name == "recommend":
        from mqlrec.recommend import recommend

        return recommend
    raise AttributeError(f"module 'mqlrec' has no attribute {name!r}")
