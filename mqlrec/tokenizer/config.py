"""Every knob of the tokenizer in one dataclass; defaults are the official configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

METHODS = ("rqvae", "macrec")


@dataclass
class TokenizerConfig:
    method: str = "rqvae"  # "rqvae": one RQ-VAE per modality; "macrec": joint, with cross-modal losses
    levels: int = 4
    codebook_size: int = 256
    e_dim: int = 32
    hidden: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)  # encoder in->hidden->e_dim, decoder mirrored
    dropout: float = 0.0
    beta: float = 0.25  # commitment weight inside each level's loss
    epochs: int = 500  # official MQL4GRec run.sh
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 1e-4
    eval_every: int = 2  # epochs between collision checks; the state with the fewest collisions is kept
    kmeans_iters: int = 25  # faiss k-means iterations (codebook init and MACRec pseudo labels)
    # The official chain r_{l+1} = r_l - STE(r_l) carries no gradient past level 0, so commitment and
    # MACRec's residual loss at deeper levels do nothing there. False = a differentiable chain.
    detach_residuals: bool = False
    seed: int = 0
    device: str = "cpu"
    # MACRec (used when method == "macrec"; needs exactly two modalities)
    n_clusters: int = 512  # k-means pseudo labels per modality (capped at N)
    con_levels: tuple[int, ...] = (2, 3)  # levels whose residuals get the cross-modal InfoNCE
    con_weight: float = 0.1
    align_weight: float = 0.001  # reconstruction alignment: InfoNCE between quantized text / image vectors
    tau: float = 0.1
    align_on: str = "straight_through"  # "straight_through" (official: gradient to encoders) | "codewords"
    # collision reallocation
    realloc_candidates: int = 0  # T nearest codes kept per level (0 = all K, as the official)
    realloc_max_passes: int = 2  # official passes before our completion phase
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        for name in ("levels", "codebook_size", "e_dim", "epochs", "batch_size", "eval_every", "n_clusters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be >= 1, got {self.hidden}")
        if any(not 0 <= l < self.levels for l in self.con_levels):
            raise ValueError(f"con_levels {self.con_levels} must lie in [0, {self.levels})")
        if self.tau <= 0:
            raise ValueError("tau must be > 0")
        if self.align_on not in ("straight_through", "codewords"):
            raise ValueError(f"align_on must be straight_through or codewords, not {self.align_on!r}")
        if not 0 <= self.realloc_candidates <= self.codebook_size:
            raise ValueError(f"realloc_candidates must lie in [0, {self.codebook_size}]")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["con_levels"] = list(self.con_levels)
        return d
