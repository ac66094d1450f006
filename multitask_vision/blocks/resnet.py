"""``ResNetBackbone``: torchvision ResNet-18/34/50/101 with named multi-scale outputs."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from multitask_vision.blocks.base import NativeBlock
from multitask_vision.registry import BLOCKS

__all__ = ["ResNetBackbone"]

_ARCHS: dict[int, tuple[Callable[..., tvm.ResNet], type[tvm.WeightsEnum]]] = {
    18: (tvm.resnet18, tvm.ResNet18_Weights),
    34: (tvm.resnet34, tvm.ResNet34_Weights),
    50: (tvm.resnet50, tvm.ResNet50_Weights),
    101: (tvm.resnet101, tvm.ResNet101_Weights),
}
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
STRIDES = {"stem": 2, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
#: What ``pretrained=True`` means: the classic weights, the ones detection recipes are tuned for.
DEFAULT_WEIGHTS = "IMAGENET1K_V1"


def _check_depth(depth: int) -> None:
    if depth not in _ARCHS:
        raise ValueError(
            f"ResNetBackbone: unsupported depth={depth!r}; valid depths: "
            f"{', '.join(map(str, _ARCHS))}"
        )


def _check_out_features(out_features: Sequence[str]) -> tuple[str, ...]:
    if isinstance(out_features, str):
        out_features = (out_features,)
    unknown = [f for f in out_features if f not in STAGES]
    if unknown or not out_features or len(set(out_features)) != len(out_features):
        raise ValueError(
            f"ResNetBackbone: out_features={tuple(out_features)!r} must be distinct names out of "
            f"{STAGES}" + (f"; unknown: {unknown}" if unknown else "")
        )
    return tuple(s for s in STAGES if s in out_features)


@BLOCKS.register_module()
class ResNetBackbone(NativeBlock):
    """torchvision ResNet whose forward returns the requested stage outputs by name.

    Outputs (for a Tensor[B, 3, H, W] input), in stage order whatever the order given:
        ``stem``: after conv1 + bn1 + relu, before the max pool: stride 2, 64 channels.
        ``layer1`` .. ``layer4``: strides 4, 8, 16, 32; channels 64/128/256/512 (depth 18, 34)
        or 256/512/1024/2048 (depth 50, 101). See :meth:`feature_channels`.
    Stages after the last requested one are not built (no unused parameters).

    Args:
        depth: 18, 34, 50 or 101.
        out_features: names of the outputs, out of ``stem``, ``layer1`` .. ``layer4``.
        pretrained: False; True for torchvision's ImageNet weights ``IMAGENET1K_V1`` taken from
            torchvision's cache (``<torch.hub.get_dir()>/checkpoints/<file>``, never downloaded
            here); a weights name (``'IMAGENET1K_V2'`` for depth 50/101); or the path of a
            state dict (torchvision key names; an mmengine checkpoint's ``state_dict`` and a
            ``module.`` prefix are unwrapped). ``fc.*`` keys are ignored.
        frozen_stages: -1 trains everything; 0 freezes the stem; k freezes stem and layer1..k
            (no gradients, BatchNorm in eval mode), as in mmdet.
        norm_eval: keep every BatchNorm in eval mode (running statistics frozen) in training.

    Example config::

        dict(name='backbone', type='ResNetBackbone', inputs=['image'],
             args=dict(depth=18, out_features=('layer2', 'layer3', 'layer4'), pretrained=True))
    """

    def __init__(
        self,
        depth: int = 18,
        out_features: Sequence[str] = ("layer1", "layer2", "layer3", "layer4"),
        pretrained: bool | str = False,
        frozen_stages: int = -1,
        norm_eval: bool = False,
    ):
        super().__init__()
        _check_depth(depth)
        self.depth = depth
        self.out_features = _check_out_features(out_features)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= 4:
            raise ValueError(
                f"ResNetBackbone: frozen_stages must be an int in -1..4, got {frozen_stages!r}"
            )
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        net = _ARCHS[depth][0](weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        last = STAGES.index(self.out_features[-1])
        self.layer_names = STAGES[1 : last + 1]
        for name in self.layer_names:
            setattr(self, name, getattr(net, name))
        channels = self.feature_channels(depth)
        self.out_channels = {name: channels[name] for name in self.out_features}

        if pretrained:
            self.load_pretrained(pretrained)
        self._freeze_stages()

    @classmethod
    def output_names(cls, args: dict) -> tuple[str, ...]:
        return _check_out_features(
            args.get("out_features", ("layer1", "layer2", "layer3", "layer4"))
        )

    @staticmethod
    def feature_channels(depth: int) -> dict[str, int]:
        """Channels of every stage output, e.g. ``{'stem': 64, 'layer1': 64, ...}`` for 18."""
        _check_depth(depth)
        e = 1 if depth < 50 else 4
        return {
            "stem": 64,
            "layer1": 64 * e,
            "layer2": 128 * e,
            "layer3": 256 * e,
            "layer4": 512 * e,
        }

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tensor[B, 3, H, W] normalised image -> {name: Tensor[B, C_name, H / s, W / s]}."""
        x = self.relu(self.bn1(self.conv1(image)))
        outs = {"stem": x}
        x = self.maxpool(x)
        for name in self.layer_names:
            x = getattr(self, name)(x)
            outs[name] = x
        return {name: outs[name] for name in self.out_features}

    # -- pretrained weights --------------------------------------------------------------------

    def _resolve_weights(self, pretrained: bool | str) -> Path:
        weights_enum = _ARCHS[self.depth][1]
        names = [w.name for w in weights_enum]
        name = DEFAULT_WEIGHTS if pretrained is True else pretrained
        if name in names:
            url = weights_enum[name].url
            path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
            if not path.is_file():
                raise FileNotFoundError(
                    f"ResNetBackbone(depth={self.depth}, pretrained={pretrained!r}): the ImageNet "
                    f"weights {weights_enum.__name__}.{name} are not in torchvision's cache; "
                    f"expected the file {path}. Nothing is downloaded here: get {url} (e.g. "
                    f"`wget {url}` on a machine with internet) and copy it to {path}, or pass "
                    "pretrained='/path/to/weights.pth'."
                )
            return path
        path = Path(str(name)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"ResNetBackbone(depth={self.depth}): pretrained={pretrained!r} is neither an "
                f"existing file nor a torchvision weights name ({', '.join(names)}) nor True"
            )
        return path

    def load_pretrained(self, pretrained: bool | str) -> None:
        """Load ImageNet or file weights; raise on missing or mis-shaped keys, warn on extra ones.

        Raises:
            FileNotFoundError: the weights are not available locally (says where to put them).
            RuntimeError: the file lacks some of this backbone's parameters or has other shapes.
        """
        path = self._resolve_weights(pretrained)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise RuntimeError(f"ResNetBackbone: cannot load weights file {path}: {e}") from e
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict):
            raise RuntimeError(f"ResNetBackbone: {path} does not hold a state dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}

        own = self.state_dict()
        skipped = tuple(s + "." for s in ("fc", *STAGES[1:]) if s not in self.layer_names)
        state = {k: v for k, v in state.items() if not k.startswith(skipped)}
        # Older torchvision files have no BatchNorm counters; BatchNorm fills them in itself.
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in own]
        mismatched = [
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in own
            if k in state and state[k].shape != own[k].shape
        ]
        if missing or mismatched:
            raise RuntimeError(
                f"ResNetBackbone(depth={self.depth}): weights file {path} does not fit: "
                f"{len(missing)} missing keys {_head(missing)}, {len(mismatched)} shape "
                f"mismatches {_head(mismatched)} (a checkpoint of another depth?)"
            )
        if unexpected:
            warnings.warn(
                f"ResNetBackbone: ignoring {len(unexpected)} unexpected keys in {path}: "
                f"{_head(unexpected)}",
                stacklevel=2,
            )
        self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)

    # -- freezing ------------------------------------------------------------------------------

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        mods: list[nn.Module] = [self.conv1, self.bn1]
        mods += [getattr(self, n) for n in self.layer_names[: self.frozen_stages]]
        return mods

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNetBackbone:
        super().train(mode)
        if mode:
            for m in self._frozen_modules():
                m.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self


def _head(items: list[str], n: int = 5) -> str:
    return "[" + ", ".join(items[:n]) + (", ..." if len(items) > n else "") + "]"
