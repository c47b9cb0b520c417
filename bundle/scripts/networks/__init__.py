# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The SAM-Med3D network as MONAI-style modules: tensors in, tensors out, no files and no geometry."""

from .checkpoint import load_checkpoint, read_state_dict
from .image_encoder import ImageEncoderViT3D
from .mask_decoder import MaskDecoder3D
from .onnx_runner import OnnxSAMMed3D, check_onnx_exported
from .prompt_encoder import PromptEncoder3D
from .sam_med3d import SAMMed3D
from .torchscript import TorchScriptSAMMed3D, check_exported
