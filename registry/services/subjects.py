"""What a promotion moves, for models and for prompts: one promotion mechanism, two small adapters.

The promotion services (request, approve, reject, rollback, expire) are written
once against this interface. A model version sits in one stage at a time (a
column on the version, a partial unique index per stage); a prompt version may
run in several environments at once (a pointer row per environment).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from mlops_site.exceptions import Conflict, NotFound

from ..models import (
    PROMOTABLE_STAGES,
    Environment,
    ModelVersion,
    PromotionRequest,
    Prompt,
    PromptDeployment,
    PromptVersion,
    RegisteredModel,
    Stage,
    StageChange,
)

# A request may not take a model version out of a stage ranked higher: demoting
# the production version to staging would leave production empty without a rollback.
STAGE_RANK = {Stage.CANDIDATE: 0, Stage.ARCHIVED: 0, Stage.STAGING: 1, Stage.PRODUCTION: 2}


class ModelSubject:
    kind = "model"
    stages: tuple[str, ...] = tuple(PROMOTABLE_STAGES)
    version_class = ModelVersion

    def __init__(self, parent: RegisteredModel):
        self.parent = parent
        self.name = parent.name
        self.subject = f"model:{parent.name}"

    @classmethod
    def lock(cls, name: str) -> ModelSubject:
        """The model's row, locked until the transaction ends: its stage changes run one at a time."""
        try:
            return cls(RegisteredModel.objects.select_for_update().get(name=name))
        except RegisteredModel.DoesNotExist:
            raise NotFound(f"No model named '{name}'.") from None

    @staticmethod
    def parent_name(version: ModelVersion) -> str:
        return version.model.name

    def holder(self, stage: str) -> ModelVersion | None:
        return ModelVersion.objects.filter(model=self.parent, stage=stage).first()

    def where(self, version: ModelVersion) -> str:
        return version.stage

    def check_move(self, version: ModelVersion, stage: str) -> None:
        if version.stage == stage:
            raise Conflict(f"{self.name} v{version.version} is already in {stage}.", code="already_in_stage")
        if STAGE_RANK[version.stage] > STAGE_RANK[stage]:
            raise Conflict(
                f"{self.name} v{version.version} is in {version.stage}; moving it to {stage} would empty {version.stage}. "
                f"Roll {version.stage} back instead.",
                code="demotion",
            )

    def place(self, version: ModelVersion, stage: str, previous: ModelVersion | None) -> None:
        """The previous holder is archived; the version leaves whatever stage it was in."""
        if previous is not None:
            ModelVersion.objects.filter(pk=previous.pk).update(stage=Stage.ARCHIVED)
        ModelVersion.objects.filter(pk=version.pk).update(stage=stage)
        version.stage = stage

    def rollback_candidates(self, version_ids: list[int]) -> set[int]:
        # A version that holds another stage now (it went on from staging to
        # production) is not free: rolling staging back must never empty production.
        return set(ModelVersion.objects.filter(pk__in=version_ids, stage__in=[Stage.ARCHIVED, Stage.CANDIDATE]).values_list("pk", flat=True))

    def needs_approval(self, stage: str) -> bool:
        return True

    def requests(self) -> QuerySet[PromotionRequest]:
        return PromotionRequest.objects.filter(model=self.parent)

    def changes(self) -> QuerySet[StageChange]:
        return StageChange.objects.filter(model=self.parent)

    def request_fields(self, version: ModelVersion, holder: ModelVersion | None) -> dict:
        return {"model": self.parent, "version": version, "from_version": holder}

    def change_fields(self, version: ModelVersion, previous: ModelVersion | None) -> dict:
        return {"model": self.parent, "version": version, "previous_version": previous}

    def version_by_id(self, pk: int) -> ModelVersion:
        return ModelVersion.objects.get(pk=pk)


class PromptSubject:
    kind = "prompt"
    stages: tuple[str, ...] = tuple(Environment.values)
    version_class = PromptVersion

    def __init__(self, parent: Prompt):
        self.parent = parent
        self.name = parent.name
        self.subject = f"prompt:{parent.name}"

    @classmethod
    def lock(cls, name: str) -> PromptSubject:
        try:
            return cls(Prompt.objects.select_for_update().get(name=name))
        except Prompt.DoesNotExist:
            raise NotFound(f"No prompt named '{name}'.") from None

    @staticmethod
    def parent_name(version: PromptVersion) -> str:
        return version.prompt.name

    def holder(self, stage: str) -> PromptVersion | None:
        deployment = PromptDeployment.objects.select_related("version").filter(prompt=self.parent, environment=stage).first()
        return deployment.version if deployment else None

    def where(self, version: PromptVersion) -> str:
        """The environments this version runs in, e.g. "dev, staging" (a version may run in several)."""
        envs = PromptDeployment.objects.filter(version=version).values_list("environment", flat=True)
        return ", ".join(e for e in Environment.values if e in set(envs))

    def check_move(self, version: PromptVersion, stage: str) -> None:
        if getattr(self.holder(stage), "pk", None) == version.pk:
            raise Conflict(f"{self.name} v{version.version} already runs in {stage}.", code="already_in_stage")

    def place(self, version: PromptVersion, stage: str, previous: PromptVersion | None) -> None:
        PromptDeployment.objects.update_or_create(
            prompt=self.parent, environment=stage, defaults={"version": version, "updated_at": timezone.now()}
        )

    def rollback_candidates(self, version_ids: list[int]) -> set[int]:
        return set(version_ids)

    def needs_approval(self, stage: str) -> bool:
        """Environments listed in MLOPS_PROMPT_DIRECT_ENVIRONMENTS (default: dev) move on request."""
        return stage not in settings.MLOPS_PROMPT_DIRECT_ENVIRONMENTS

    def requests(self) -> QuerySet[PromotionRequest]:
        return PromotionRequest.objects.filter(prompt=self.parent)

    def changes(self) -> QuerySet[StageChange]:
        return StageChange.objects.filter(prompt=self.parent)

    def request_fields(self, version: PromptVersion, holder: PromptVersion | None) -> dict:
        return {"prompt": self.parent, "prompt_version": version, "from_prompt_version": holder}

    def change_fields(self, version: PromptVersion, previous: PromptVersion | None) -> dict:
        return {"prompt": self.parent, "prompt_version": version, "previous_prompt_version": previous}

    def version_by_id(self, pk: int) -> PromptVersion:
        return PromptVersion.objects.get(pk=pk)


def subject_for_version(version) -> type[ModelSubject] | type[PromptSubject]:
    return PromptSubject if isinstance(version, PromptVersion) else ModelSubject


def subject_for_request(promotion: PromotionRequest) -> type[ModelSubject] | type[PromptSubject]:
    return ModelSubject if promotion.version_id else PromptSubject
