"""When failed trials stop a sweep: the two limits of the Optuna sweeper, for one sweeper process.

- `max_failure_rate`, the standard plugin's meaning: this run's trials, in launch order, form
  batches of `n_jobs`; a batch whose failed share exceeds the rate stops the sweep. A batch is
  judged once all of its trials ended (the last, short one only at the end), so the verdict does
  not depend on which job of a batch happens to end first.
- `max_failed_share`: more than this share of `n_trials` failed in this run stops it (diverged
  runs happen; a few must not end a long search, a broken setup must not burn all of it).

A failure that is not counted (a NaN result: FAIL in Optuna, as with the plugin) and a trial
taken over by another worker end their trial here without counting as failed. The first reason
to stop is kept; the study loop then starts no new trial and ends with it.
"""

from __future__ import annotations


class FailurePolicy:
    def __init__(self, n_trials: int, n_jobs: int, max_failure_rate: float, max_failed_share: float | None) -> None:
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate, self.max_failed_share = max_failure_rate, max_failed_share
        self.failed: list[tuple[int, str, str]] = []  # (trial number, status, error) of this run, in order
        self.launched: list[int] = []  # trial numbers of this run, in launch order
        self.ended: set[int] = set()
        self.batches_judged = 0
        self.stop: str | None = None  # why the sweep should stop; None: go on

    def launch(self, number: int) -> None:
        self.launched.append(number)

    def end(self, number: int, failure: tuple[str, str] | None = None) -> None:
        """Trial `number` ended; `failure`: (status, error) of a counted failure."""
        if failure is not None:
            self.failed.append((number, *failure))
            share = self.max_failed_share
            if share is not None and len(self.failed) > share * self.n_trials and self.stop is None:
                self.stop = (
                    f"{len(self.failed)} trials failed in this run, more than max_failed_share="
                    f"{share} x n_trials={self.n_trials} allows"
                )
        self.ended.add(number)

    def judge_batches(self, final: bool = False) -> str | None:
        """Judge every batch whose trials all ended (`final`: the last, short one too); the reason
        to stop, if any."""
        size = self.n_jobs
        failed = {number for number, _, _ in self.failed}
        while self.stop is None:
            batch = self.launched[self.batches_judged * size : (self.batches_judged + 1) * size]
            if not batch or not (len(batch) == size or final) or not self.ended.issuperset(batch):
                break
            self.batches_judged += 1
            n_failed = sum(1 for n in batch if n in failed)
            if n_failed / len(batch) > self.max_failure_rate:
                self.stop = (
                    f"{n_failed} of the {len(batch)} trials of a batch failed (trials "
                    f"{', '.join(map(str, batch))}), more than max_failure_rate={self.max_failure_rate} "
                    f"allows (batches of n_jobs={size})"
                )
        return self.stop
