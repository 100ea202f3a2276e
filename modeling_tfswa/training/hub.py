"""Background pushes of a saved model folder to the Hugging Face Hub during training.

Training must never wait for, or die from, the Hub: [`HubPusher.push`] snapshots the folder (so the
trainer may overwrite it at once) and uploads the snapshot with `upload_folder` on a background
thread. At most one push is in flight; a checkpoint that arrives while one is running is skipped
(the next one carries newer weights anyway). Any failure is logged as a warning and counted; the
next checkpoint simply pushes again. Call it from the main process only.

Why our own thread and not `HfApi.upload_folder(run_as_future=True)`: those futures run on
`HfApi`'s `ThreadPoolExecutor`, whose worker the interpreter joins at exit, so a Hub that hangs
holds the end of training until the upload gives up. Measured (`benchmarks/training_libraries.py`,
huggingface_hub 2.4, a Hub answering every request after 12 s with an error, a 1-s wait for the
push at the end): the process exits 106 s after training with `run_as_future` (5 retries with
back-off), 1.9 s with this daemon thread. The snapshot, the one-push-in-flight rule and the failure
log would stay ours either way; the library would only replace the thread start.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path

from huggingface_hub import HfApi

logger = logging.getLogger(__name__)


class HubPusher:
    """Pushes folders to one Hub model repository in the background.

    Args:
        repo_id (`str`): `user/name` of the model repository (created on the first push if needed).
        private (`bool`, *optional*, defaults to `True`): create the repository as private.
        token (`str`, *optional*): Hub token (default: the logged-in user's / `HF_TOKEN`).

    Attributes:
        pushed (`list[str]`): commit messages of the successful pushes.
        failures (`int`): failed pushes so far; `last_error` holds the latest exception.
    """

    def __init__(self, repo_id: str, *, private: bool = True, token: str | None = None):
        self.repo_id = repo_id
        self.private = private
        self.api = HfApi(token=token)
        self.pushed: list[str] = []
        self.failures = 0
        self.last_error: BaseException | None = None
        self._repo_ready = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def push(self, folder: str | Path, commit_message: str) -> bool:
        """Start pushing a snapshot of `folder`; returns False (and pushes nothing) when the
        previous push is still running. Never raises for Hub or network problems."""
        if self.busy:
            logger.warning(
                "Hub push to %s still running; skipping '%s' (the next checkpoint will push).",
                self.repo_id,
                commit_message,
            )
            return False
        staging = Path(tempfile.mkdtemp(prefix="tfswa-hub-push-"))
        try:
            shutil.copytree(folder, staging, dirs_exist_ok=True)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            self._record_failure(error, commit_message)
            return False
        self._thread = threading.Thread(
            target=self._upload, args=(staging, commit_message), name="hub-push", daemon=True
        )
        self._thread.start()
        return True

    def _upload(self, staging: Path, commit_message: str) -> None:
        try:
            if not self._repo_ready:
                self.api.create_repo(self.repo_id, private=self.private, exist_ok=True)
                self._repo_ready = True
            self.api.upload_folder(
                repo_id=self.repo_id, folder_path=staging, commit_message=commit_message
            )
            self.pushed.append(commit_message)
            logger.info("Pushed '%s' to https://huggingface.co/%s", commit_message, self.repo_id)
        except Exception as error:  # noqa: BLE001 - any Hub/network failure must not stop training
            self._record_failure(error, commit_message)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _record_failure(self, error: BaseException, commit_message: str) -> None:
        self.failures += 1
        self.last_error = error
        logger.warning(
            "Hub push '%s' to %s failed (%s: %s); training goes on, the next checkpoint retries.",
            commit_message,
            self.repo_id,
            type(error).__name__,
            error,
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the push in flight (if any); returns True when none is left running."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy


__all__ = ["HubPusher"]
