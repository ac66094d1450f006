"""`MultiTaskTrainLoop`: mmengine's iteration-based loop, with an exact resume.

On resume, mmengine's ``IterBasedTrainLoop`` replays the data loader up to the resumed iteration
(so the sampler continues where it stopped); the replay runs the random transforms and consumes
the global random number generators. This loop calls ``after_data_replay`` on the hooks right
after the replay and before the first new batch is drawn, where `RNGStateHook` restores the
states saved with the checkpoint. With ``num_workers=0`` and deterministic algorithms, a resumed
run then computes exactly what an uninterrupted one does.
"""

from __future__ import annotations

from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from multitask_vision.registry import LOOPS

__all__ = ["MultiTaskTrainLoop"]


@LOOPS.register_module()
class MultiTaskTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` + the ``after_data_replay`` hook point (same arguments)."""

    def run(self):
        self.runner.call_hook("before_train")
        self.runner.call_hook("before_train_epoch")
        if self._iter > 0:
            print_log(
                f"Advance dataloader {self._iter} steps to skip data that has already been trained",
                logger="current",
            )
            for _ in range(self._iter):
                next(self.dataloader_iterator)
            self.runner.call_hook("after_data_replay")
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (
                self.runner.val_loop is not None
                and self._iter >= self.val_begin
                and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)
            ):
                self.runner.val_loop.run()
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")
        return self.runner.model
