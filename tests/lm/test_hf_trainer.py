"""transformers.Trainer drives UniPTForCausalLM like any causal LM: only the side network changes."""

import torch


def test_transformers_trainer_runs_a_few_steps(tiny_lm, tmp_path):
    from transformers import Trainer, TrainingArguments

    from unipt.lm import UniPTForCausalLM

    backbone = tiny_lm("gpt2")
    frozen_before = {n: p.clone() for n, p in backbone.named_parameters()}
    model = UniPTForCausalLM(backbone)
    side_before = {n: p.clone() for n, p in model.side.named_parameters()}
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, 256, (10,), generator=g) for _ in range(8)]
    data = [{"input_ids": r, "attention_mask": torch.ones_like(r), "labels": r} for r in rows]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-2,
                             logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    result = trainer.train()
    assert result.global_step == 3 and torch.isfinite(torch.tensor(result.training_loss))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3
    assert any(not torch.equal(p, side_before[n]) for n, p in model.side.named_parameters())
    assert all(torch.equal(p, frozen_before[n]) for n, p in backbone.named_parameters())
