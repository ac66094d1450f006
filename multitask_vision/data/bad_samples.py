"""What happens to a sample whose files or annotations are unusable.

Every reader and transform of this package raises `BadSampleError` with a message that names the
file and what is wrong with it. Datasets then follow their ``on_bad_sample`` setting:

- ``'error'`` (default): the error propagates, so a broken dataset stops the run at the first bad
  file instead of training on a silently wrong sample.
- ``'skip'``: annotation problems found while the dataset loads its index drop the sample, and
  one warning at the end of loading gives the count and the first reasons; problems found while
  a training sample is read (a corrupt image, a mask whose size differs from its image) log a
  warning with a running count and another sample of the same task group is read instead.
  Evaluation (``test_mode=True``) never skips at read time: a metric computed on fewer images
  than the split holds would not be comparable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mmengine.logging import print_log

__all__ = ["ON_BAD_SAMPLE", "BadSampleError", "BadSampleReport", "check_on_bad_sample"]

ON_BAD_SAMPLE = ("error", "skip")


class BadSampleError(ValueError):
    """A sample whose image or annotation is missing, corrupt or inconsistent.

    The message starts with the offending file, then says what is wrong with it.
    """


def check_on_bad_sample(value: str, owner: str) -> str:
    """Validate an ``on_bad_sample`` setting; ``owner`` names the dataset for the message."""
    if value not in ON_BAD_SAMPLE:
        raise ValueError(
            f"{owner}: on_bad_sample={value!r} is not one of {', '.join(map(repr, ON_BAD_SAMPLE))}"
        )
    return value


@dataclass
class BadSampleReport:
    """Collects the samples a dataset skipped, and logs one summary warning.

    Attributes:
        owner: how the dataset is named in messages, e.g. ``"VOCMultitaskDataset 'voc'"``.
        reasons: one message per skipped sample.
    """

    owner: str
    reasons: list[str] = field(default_factory=list)
    max_listed: int = 10

    def add(self, error: BadSampleError) -> None:
        self.reasons.append(str(error))

    def log_summary(self, total: int) -> None:
        """Warn once with the number of skipped samples out of ``total`` and the first reasons."""
        if not self.reasons:
            return
        listed = "\n  ".join(self.reasons[: self.max_listed])
        more = len(self.reasons) - self.max_listed
        print_log(
            f"{self.owner}: skipped {len(self.reasons)} of {total} samples with bad annotations "
            f"(on_bad_sample='skip'):\n  {listed}"
            + (f"\n  ... and {more} more" if more > 0 else ""),
            logger="current",
            level=logging.WARNING,
        )
