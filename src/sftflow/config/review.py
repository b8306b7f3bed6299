"""The review: section: human review batches, their overlap, and the sample a human gate needs."""

from __future__ import annotations

from pydantic import Field, model_validator

from sftflow.config.strict import Strict


class ReviewConfig(Strict):
    """Human review (`sftflow review`): who rates what, and how many ratings a human gate needs."""

    batch_size: int = Field(40, ge=1, description="test examples assigned to each reviewer (all of them when fewer)")
    overlap: int = Field(10, ge=0, description="of each batch, examples every reviewer rates: agreement is measured on them")
    seed: int = Field(0, description="seed of the sample each batch is drawn from (the same seed, the same batches)")
    min_ratings: int = Field(30, ge=1, description="a human_* gate decides only from this many rated examples; below "
                                                   "it says 'not enough ratings' and the verdict does not pass")
    reveal_after_batch: bool = Field(False, description="after a reviewer submits their batch, show them which answer "
                                                        "was the fine-tuned one (never before)")

    @model_validator(mode="after")
    def _overlap_fits(self):
        if self.overlap > self.batch_size:
            raise ValueError(f"review.overlap ({self.overlap}) is larger than review.batch_size ({self.batch_size}); "
                             "lower it to at most the batch size")
        return self
