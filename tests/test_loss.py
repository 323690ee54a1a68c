"""The label-position loss equals the plain full-logits loss."""

import pytest
import torch
from torch.testing import assert_close

from common.methods import num_virtual_tokens
from common.training.trainer import label_position_loss
from helpers import a_batch, build, method_arguments


@pytest.mark.parametrize("method", method_arguments())
def test_label_position_loss_equals_full_loss(method, tiny_model_dir, tiny_tokenizer):
    model = build(method, tiny_model_dir).eval()
    batch = a_batch(tiny_tokenizer)
    with torch.no_grad():
        plain = model(**batch).loss
        ours = label_position_loss(model, batch, num_virtual_tokens(model))
    assert_close(ours, plain, rtol=1e-6, atol=1e-6)


def test_num_items_in_batch_sums_over_accumulated_tokens(tiny_model_dir, tiny_tokenizer):
    model = build("finetune", tiny_model_dir).eval()
    batch = a_batch(tiny_tokenizer)
    tokens = (batch["labels"][:, 1:] != -100).sum()
    with torch.no_grad():
        mean = label_position_loss(model, batch)
        scaled = label_position_loss(model, batch, num_items_in_batch=tokens * 2)
    assert_close(scaled, mean / 2)
