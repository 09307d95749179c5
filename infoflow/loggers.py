"""Lightning's W&B logger without the noise it makes in a terminal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger

from infoflow.specs import any_of, boolean, checked, choice, text


def wandb_offline() -> bool:
    """Whether W&B runs offline (``WANDB_MODE``; ``python -m infoflow`` makes it ``offline`` by
    default)."""
    return os.environ.get("WANDB_MODE", "online").lower() in ("offline", "dryrun")


class WandbLogger(_LightningWandbLogger):
    """:class:`pytorch_lightning.loggers.WandbLogger`, with two differences:

    * ``anonymous`` is left unset unless given: Lightning passes ``anonymous=None``, which W&B
      (≥ 0.19) counts as set and answers with ``wandb: WARNING The anonymous setting has no
      effect…`` on every run.
    * ``quiet`` (default true): W&B prints only what a user needs. Online, that is the run's URL
      (W&B's ``quiet`` setting: no history sparklines or summary at the end); offline, nothing
      (``silent``: no "run `wandb online`" and "`wandb leet`" tips), since the run's own summary
      names the offline run and how to upload it. ``settings`` given explicitly win.
    """

    @checked
    def __init__(
        self,
        *args: Any,
        name: Annotated[str | None, text().or_null("(the run's name)")] = None,
        project: Annotated[str | None, text().or_null()] = None,
        group: Annotated[str | None, text().or_null("(the sweep's name)")] = None,
        entity: Annotated[str | None, text().or_null("(your default)")] = None,
        log_model: Annotated[
            bool | str, any_of(boolean(), choice("all"), allowed="allowed: true, false, all")
        ] = False,
        quiet: Annotated[bool, boolean()] = True,
        **kwargs: Any,
    ) -> None:
        kwargs |= {"name": name, "project": project, "log_model": log_model}
        kwargs |= {k: v for k, v in (("group", group), ("entity", entity)) if v is not None}
        if quiet:
            settings = {"quiet": True, "silent": wandb_offline()}
            given = kwargs.get("settings")
            if isinstance(given, dict):
                settings.update(given)
            kwargs["settings"] = settings if given is None or isinstance(given, dict) else given
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


def offline_runs(run_dir: str | os.PathLike) -> list[Path]:
    """The W&B offline runs under a run directory (``wandb/offline-run-*``), oldest first (a
    resumed run adds one)."""
    return sorted((Path(run_dir) / "wandb").glob("offline-run-*"))
