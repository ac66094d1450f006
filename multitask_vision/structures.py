"""The per-sample data structure shared by datasets, adapters, metrics and visualizers.

`MultiTaskDataSample` is at once an mmdet `DetDataSample` and an mmseg `SegDataSample`, so mmdet
and mmseg heads, metrics (`VOCMetric`, `IoUMetric`, `DepthMetric`) and visualizers accept it
unchanged. A sample only carries the ground truth of the tasks its dataset annotates.

Fields (all optional; shapes per sample, H x W = the input image after transforms):
    gt_instances:      InstanceData(bboxes: Tensor[N, 4] float (x1, y1, x2, y2) pixels,
                       labels: Tensor[N] long)
    ignored_instances: same layout; VOC `difficult` objects (kept out of training targets,
                       ignored by VOC evaluation)
    gt_sem_seg:        PixelData(data: Tensor[1, H, W] long; 255 = ignore)
    gt_depth_map:      PixelData(data: Tensor[1, H, W] float32 metres; 0 = invalid)
    pred_instances / pred_sem_seg / pred_depth_map: the same layouts, in ORIGINAL image pixels.
Metainfo: img_id, img_path, ori_shape, img_shape, scale_factor (w, h), flip, pad_shape,
    batch_input_shape, dataset (name), tasks (tuple of task names with ground truth).
"""

from mmdet.structures import DetDataSample
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

__all__ = ["MultiTaskDataSample"]


class MultiTaskDataSample(DetDataSample, SegDataSample):
    """mmdet + mmseg data sample with depth maps and the task set of the sample."""

    @property
    def gt_depth_map(self) -> PixelData:
        return self._gt_depth_map

    @gt_depth_map.setter
    def gt_depth_map(self, value: PixelData):
        self.set_field(value, "_gt_depth_map", dtype=PixelData)

    @gt_depth_map.deleter
    def gt_depth_map(self):
        del self._gt_depth_map

    @property
    def pred_depth_map(self) -> PixelData:
        return self._pred_depth_map

    @pred_depth_map.setter
    def pred_depth_map(self, value: PixelData):
        self.set_field(value, "_pred_depth_map", dtype=PixelData)

    @pred_depth_map.deleter
    def pred_depth_map(self):
        del self._pred_depth_map
