"""Datasets, transforms, samplers and the data preprocessor of MultitaskVision.

Importing this package registers everything in the ``mtv`` registries (datasets, transforms,
data samplers; the preprocessor in MODELS), so configs can name them with default_scope='mtv'.
The demo data generator (`multitask_vision.data.demo`) and the NYU converter
(`multitask_vision.data.nyu_convert`) are command-line modules, imported on their own.
"""

from multitask_vision.data.bad_samples import BadSampleError
from multitask_vision.data.base import GT_KEY_TASKS, TASKS, MultiTaskDataset
from multitask_vision.data.concat import MultiTaskConcatDataset
from multitask_vision.data.formatting import PackMultiTaskInputs
from multitask_vision.data.loading import LoadImageFromFile, LoadMultiTaskAnnotations
from multitask_vision.data.nyu import NYU13_CLASSES, NYU40_CLASSES, NYUDepthDataset
from multitask_vision.data.pipelines import test_pipeline, train_pipeline
from multitask_vision.data.preprocessor import MultiTaskDataPreprocessor
from multitask_vision.data.sampler import (
    MultiTaskGroupBatchSampler,
    MultiTaskGroupSampler,
    find_task_groups,
)
from multitask_vision.data.transforms import (
    PhotoMetricDistortion,
    RandomCrop,
    RandomFlip,
    RandomResize,
    Resize,
)
from multitask_vision.data.voc import VOC_CLASSES, VOCMultitaskDataset

__all__ = [
    "GT_KEY_TASKS",
    "NYU13_CLASSES",
    "NYU40_CLASSES",
    "TASKS",
    "VOC_CLASSES",
    "BadSampleError",
    "LoadImageFromFile",
    "LoadMultiTaskAnnotations",
    "MultiTaskConcatDataset",
    "MultiTaskDataPreprocessor",
    "MultiTaskDataset",
    "MultiTaskGroupBatchSampler",
    "MultiTaskGroupSampler",
    "NYUDepthDataset",
    "PackMultiTaskInputs",
    "PhotoMetricDistortion",
    "RandomCrop",
    "RandomFlip",
    "RandomResize",
    "Resize",
    "VOCMultitaskDataset",
    "find_task_groups",
    "test_pipeline",
    "train_pipeline",
]
