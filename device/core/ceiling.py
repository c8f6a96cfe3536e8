"""The human ceiling: a model judged as one more rater against its raters' own disagreement.

The contract the trainer writes (``metrics.json``'s ``human_ceiling``, computed by
``trainer.ceiling``) and the model card and the dashboard read. Per sign, on the held-out
lesions that two or more raters graded: the raters' agreement with each other (quadratic
weighted kappa per pair, their mean, Krippendorff's alpha), the model's agreement with
each rater (and its mean), each with a 95 % bootstrap interval over lesions, and a verdict.

Raters disagree (on published data they fully agree on erythema for about a third of
lesions, on lichenification for about a tenth), so "does the model disagree with a
dermatologist more than two dermatologists disagree with each other?" is the question a
clinic asks. Where the raters are simulated (the synthetic generator) the figures say so
and are never clinical.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

#: Fewest held-out lesions graded by two or more raters before a verdict is given.
MIN_LESIONS = 10


class LabelSource(str, Enum):
    """What a model was trained on: the consensus grade, or the raters' grades."""

    CONSENSUS = "consensus"  # one grade per lesion (the studio's median or adjudication)
    RATERS = "raters"        # the distribution of the raters' grades (soft labels)

    def __str__(self) -> str:
        return self.value


def parse_label_source(text: str | LabelSource) -> LabelSource:
    try:
        return LabelSource(str(text).strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in LabelSource)
        raise ValueError(f"unknown label source {text!r}: expected one of {choices}") from None


class CeilingVerdict(str, Enum):
    WITHIN = "within"  # the model's agreement is not below the raters' (by the intervals)
    BELOW = "below"    # the model agrees with the raters less than they agree with each other
    NOT_ENOUGH_RATERS = "not enough raters"

    def __str__(self) -> str:
        return self.value


class Estimate(BaseModel):
    """A figure with its 95 % percentile bootstrap interval (resampling lesions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None = Field(description="The figure on all lesions (None: undefined)")
    ci95: tuple[float | None, float | None] = Field(default=(None, None),
                                                    description="95 % bootstrap interval")
    n: int = Field(ge=0, description="Lesions it was computed on")

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        lo, hi = (f"{v:.2f}" if v is not None else "?" for v in self.ci95)
        return f"{self.value:.3f} [{lo}, {hi}]"


class SignCeiling(BaseModel):
    """One sign's human ceiling on a held-out split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_lesions: int = Field(ge=0, description="Held-out lesions graded by two or more raters")
    raters: list[str] = Field(default_factory=list, description="Raters of those lesions")
    rater_kappa: Estimate | None = Field(
        default=None, description="Mean quadratic weighted kappa over pairs of raters")
    model_kappa: Estimate | None = Field(
        default=None, description="Mean quadratic weighted kappa of the model with each rater")
    difference: Estimate | None = Field(
        default=None, description="model_kappa - rater_kappa, resampled on the same lesions")
    rater_alpha: Estimate | None = Field(
        default=None, description="Krippendorff's alpha (ordinal) across the raters")
    rater_pairs: dict[str, Estimate] = Field(
        default_factory=dict, description="Quadratic kappa of each pair of raters, 'a|b'")
    model_vs_rater: dict[str, Estimate] = Field(
        default_factory=dict, description="Quadratic kappa of the model with each rater")
    verdict: CeilingVerdict = Field(description="within, below, or not enough raters")
    simulated_raters: bool = Field(
        default=False, description="The raters were simulated (synthetic data): never clinical")
    resamples: int = Field(default=0, ge=0, description="Bootstrap resamples")

    @property
    def rater_kappa_ci95(self) -> tuple[float | None, float | None]:
        return self.rater_kappa.ci95 if self.rater_kappa else (None, None)

    @property
    def model_kappa_ci95(self) -> tuple[float | None, float | None]:
        return self.model_kappa.ci95 if self.model_kappa else (None, None)


def decide(difference: Estimate | None, n_lesions: int, n_raters: int) -> CeilingVerdict:
    """``below`` when the paired 95 % interval of (model kappa - raters' kappa) lies wholly
    under zero; ``within`` otherwise; ``not enough raters`` under two raters or
    ``MIN_LESIONS`` lesions, or where the kappas are undefined."""
    if n_raters < 2 or n_lesions < MIN_LESIONS or difference is None or difference.value is None:
        return CeilingVerdict.NOT_ENOUGH_RATERS
    hi = difference.ci95[1]
    if hi is not None and hi < 0:
        return CeilingVerdict.BELOW
    return CeilingVerdict.WITHIN


SIMULATED_NOTE = "simulated raters on synthetic images: not clinical agreement"
