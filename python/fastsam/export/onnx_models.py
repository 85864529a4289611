"""torch modules that are traced into the exported ONNX graphs.

They wrap the parts of a ``Sam`` model (segment-anything API) and add what the runtime should not
have to re-implement: normalisation and padding in the encoder, prompt embedding and mask
post-processing in the decoders. Each one is built in eval mode and stays there.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import decoder_graph


class EncoderOnnxModel(nn.Module):
    """Normalise (pixel mean/std), zero-pad bottom/right to ``image_size``², run the image encoder.

    Arguments:
      sam: a ``Sam`` model; its ``image_encoder``, ``pixel_mean`` and ``pixel_std`` are used.
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder
        self.img_size = int(sam.image_encoder.img_size)
        self.register_buffer("pixel_mean", sam.pixel_mean.detach().reshape(1, -1, 1, 1).clone(), persistent=False)
        self.register_buffer("pixel_std", sam.pixel_std.detach().reshape(1, -1, 1, 1).clone(), persistent=False)
        self.eval()

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: float32 (B,3,H,W) RGB 0..255 with max(H,W) == image_size. Returns (B,256,64,64)."""
        x = (image - self.pixel_mean) / self.pixel_std
        # Pad amounts come from the traced input shape, so H and W stay dynamic in the graph.
        pad_h = self.img_size - x.shape[-2]
        pad_w = self.img_size - x.shape[-1]
        x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.image_encoder(x)


class _PromptEmbedder(nn.Module):
    """Trace-friendly prompt embedding shared by both decoders (no data-dependent control flow).

    ``optimized_graph`` True predicts masks with ``decoder_graph.predict_masks`` (the exported layout),
    False with ``MaskDecoder.predict_masks`` (the reference the parity gate compares against).
    """

    def __init__(self, sam: nn.Module, optimized_graph: bool = True) -> None:
        super().__init__()
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder
        self.img_size = int(sam.image_encoder.img_size)
        self.optimized_graph = optimized_graph

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        # Random Fourier features of coords normalised to [0, 1], as the prompt encoder's pe_layer does.
        gaussian = self.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        coords = 2 * coords - 1
        coords = coords @ gaussian
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """(B,N,2) 1024-frame coords and (B,N) labels -> (B,N,256) sparse embeddings.

        Label -1 marks padding (not-a-point embedding), 0/1 negative/positive points, 2/3 box corners.
        """
        coords = (point_coords + 0.5) / self.img_size
        embedding = self._pe_encoding(coords)
        labels = point_labels.unsqueeze(-1).expand_as(embedding)
        embedding = embedding * (labels != -1)
        embedding = embedding + self.prompt_encoder.not_a_point_embed.weight * (labels == -1)
        for i in range(self.prompt_encoder.num_point_embeddings):
            embedding = embedding + self.prompt_encoder.point_embeddings[i].weight * (labels == i)
        return embedding

    def embed_masks(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """(B,1,256,256) mask logits and (1,) flag -> (B,256,64,64) dense embeddings."""
        embedding = has_mask_input * self.prompt_encoder.mask_downscaling(mask_input)
        return embedding + (1 - has_mask_input) * self.no_mask_embedding()

    def no_mask_embedding(self) -> torch.Tensor:
        """(1,256,1,1): the dense embedding of every prompt when has_mask_input is 0."""
        return self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def _embed(self, point_coords, point_labels, mask_input, has_mask_input, dense):
        sparse = self.embed_points(point_coords, point_labels)
        if dense is None:
            dense = self.embed_masks(mask_input, has_mask_input)
        return sparse, dense, self.prompt_encoder.get_dense_pe()

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, dense=None):
        """Low-res logits and IoU of all mask tokens; ``dense`` (from ``embed_masks``) is computed when None."""
        sparse, dense, image_pe = self._embed(point_coords, point_labels, mask_input, has_mask_input, dense)
        if self.optimized_graph:
            return decoder_graph.predict_masks(self.mask_decoder, image_embeddings, image_pe, sparse, dense)
        dense = dense.expand(sparse.shape[0], -1, image_embeddings.shape[-2], image_embeddings.shape[-1])
        return self.mask_decoder.predict_masks(image_embeddings, image_pe, sparse, dense)


class DecoderOnnxModel(_PromptEmbedder):
    """The official SAM ONNX decoder (``SamOnnxModel`` with return_single_mask=False) semantics.

    Arguments:
      sam: a ``Sam`` model; prompt encoder and mask decoder are used.
      optimized_graph: see ``_PromptEmbedder``.
    """

    def __init__(self, sam: nn.Module, optimized_graph: bool = True) -> None:
        super().__init__(sam, optimized_graph)
        self.eval()

    def _prepadded_size(self, orig_im_size: torch.Tensor) -> torch.Tensor:
        # ResizeLongestSide.get_preprocess_shape in tensor ops: round(size * image_size / max(size)).
        size = orig_im_size.to(torch.float32)
        scale = self.img_size / torch.max(size)
        return torch.floor(scale * size + 0.5).to(torch.int64)

    def postprocess(self, masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """(1,4,256,256) low-res logits -> (1,4,H,W) logits at the original image size."""
        masks = F.interpolate(masks, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        prepadded = self._prepadded_size(orig_im_size)
        masks = masks[..., : prepadded[0], : prepadded[1]]
        orig = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(orig[0], orig[1]), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size,
                dense=None):
        """Inputs/outputs as ``io_spec.decoder_spec``: returns (masks, iou_predictions, low_res_masks).
        ``dense`` replaces ``embed_masks(mask_input, has_mask_input)`` (the export computes it in an If)."""
        low_res, iou = self.decode(image_embeddings, point_coords, point_labels, mask_input, has_mask_input, dense)
        return self.postprocess(low_res, orig_im_size), iou, low_res


class BatchedDecoderOnnxModel(_PromptEmbedder):
    """B prompts x N points against one embedding, returning low-res logits and IoU predictions.

    Arguments:
      sam: a ``Sam`` model; prompt encoder and mask decoder are used.
      optimized_graph: see ``_PromptEmbedder``.
    """

    def __init__(self, sam: nn.Module, optimized_graph: bool = True) -> None:
        super().__init__(sam, optimized_graph)
        self.eval()

    @torch.no_grad()
    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, dense=None):
        """Inputs/outputs as ``io_spec.decoder_batched_spec``: returns (iou_predictions, low_res_masks).
        ``dense`` replaces ``embed_masks(mask_input, has_mask_input)`` (the export computes it in an If)."""
        low_res, iou = self.decode(image_embeddings, point_coords, point_labels, mask_input, has_mask_input, dense)
        return iou, low_res


class DecoderHeadOnnxModel(_PromptEmbedder):
    """First half of the batched decoder: IoU predictions, hypernetwork mask weights and the
    transformer's image tokens of B prompts x N points (``decoder_graph.predict_tokens``).

    Arguments:
      sam: a ``Sam`` model; prompt encoder and mask decoder are used.
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__(sam, optimized_graph=True)
        self.eval()

    @torch.no_grad()
    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, dense=None):
        """Inputs/outputs as ``io_spec.decoder_head_spec``: (iou_predictions, mask_weights, image_tokens)."""
        sparse, dense, image_pe = self._embed(point_coords, point_labels, mask_input, has_mask_input, dense)
        return decoder_graph.predict_tokens(self.mask_decoder, image_embeddings, image_pe, sparse, dense)


class DecoderMasksOnnxModel(nn.Module):
    """Second half of the batched decoder: upscale image tokens and project them on mask weights
    (``decoder_graph.upscale_and_project``) for any number of mask tokens.

    Arguments:
      sam: a ``Sam`` model; its mask decoder's upscaling layers are used.
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.mask_decoder = sam.mask_decoder
        self.embedding_size = int(sam.image_encoder.img_size) // 16
        self.eval()

    @torch.no_grad()
    def forward(self, image_tokens, mask_weights):
        """image_tokens (B, h*w, 256), mask_weights (B, T, 32) -> low_res_masks (B, T, 4h, 4w)."""
        size = (self.embedding_size, self.embedding_size)
        return decoder_graph.upscale_and_project(self.mask_decoder, image_tokens, mask_weights, size)
