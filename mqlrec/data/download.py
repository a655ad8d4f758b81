"""Download a public file with sha256 verification; resumable and never leaves a half file at the target.

Bytes go to `<dest>.part` (resumed with an HTTP Range request when the server allows it); the file
is renamed to `dest` only after its sha256 matches. A mismatch deletes the .part file and raises.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request

from tqdm import tqdm

from mqlrec.data.dataset import DataError

_AMAZON_2018 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"
# Amazon Reviews 2018 category names of the papers' datasets. The publishers give no checksums:
# pass --sha256 to pin a file (the digest of every download is printed so it can be pinned).
AMAZON_2018_CATEGORIES = {
    "Instruments": "Musical_Instruments",
    "Arts": "Arts_Crafts_and_Sewing",
    "Games": "Video_Games",
}


def amazon_2018_urls(dataset: str) -> dict[str, str]:
    """{"reviews": 5-core reviews URL, "meta": metadata URL} of one of AMAZON_2018_CATEGORIES."""
    if dataset not in AMAZON_2018_CATEGORIES:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(AMAZON_2018_CATEGORIES)}")
    category = AMAZON_2018_CATEGORIES[dataset]
    return {
        "reviews": f"{_AMAZON_2018}/categoryFilesSmall/{category}_5.json.gz",
        "meta": f"{_AMAZON_2018}/metaFiles2/meta_{category}.json.gz",
    }


def sha256_of(path: str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str, sha256: str | None = None, timeout: float = 60.0, progress: bool = True) -> str:
    """Fetch url to dest; return the file's sha256. An existing dest with the right digest is kept."""
    if sha256 is not None:
        sha256 = sha256.lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise DataError(f"--sha256 must be 64 hex digits, got {sha256!r}")
    if os.path.isfile(dest):
        digest = sha256_of(dest)
        if sha256 is None or digest == sha256:
            return digest
        raise DataError(f"{dest}: exists with sha256 {digest}, expected {sha256}; delete it to download again")
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = f"{dest}.part"
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have > 0 and response.status == 206
            if not resumed:
                have = 0  # the server ignored the Range request: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=os.path.basename(dest),
                disable=not progress or None,
            ) as bar:
                while block := response.read(1 << 16):
                    f.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # Range beyond the end: the .part file is already complete
            pass
        else:
            raise DataError(f"{url}: download failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"{url}: download failed ({reason}); run again to resume from {part}") from None
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256:
        os.remove(part)
        raise DataError(f"{url}: sha256 mismatch: got {digest}, expected {sha256} (the partial file was removed)")
    os.replace(part, dest)
    return digest
