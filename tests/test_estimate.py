from transformers import LlamaConfig

from sftflow.train.estimate import estimate_memory, lora_parameters

LLAMA2_7B = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                        num_attention_heads=32)


def test_lora_parameter_count_matches_peft():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    small = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(small), LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with torch.device("meta"):
        meta = LlamaForCausalLM(small)
    assert lora_parameters(meta, 8, "all-linear") == trainable
    assert lora_parameters(meta, 8, ["q_proj", "v_proj"]) == 2 * 8 * ((64 + 64) + (64 + 32))


def test_7b_figures_match_practice():
    full = estimate_memory(LLAMA2_7B, method="full", batch_size=1, seq_len=512, gradient_checkpointing=True)
    lora = estimate_memory(LLAMA2_7B, method="lora", batch_size=1, seq_len=512, gradient_checkpointing=True)
    qlora = estimate_memory(LLAMA2_7B, method="qlora", batch_size=1, seq_len=512)
    assert 6.7e9 < full.total_parameters < 6.8e9
    assert 0.004 < lora.trainable_parameters / lora.total_parameters < 0.007  # "~0.1-1% of parameters"
    assert 12 < lora.weights_gib < 14  # 16-bit weights, the playbook's ~14 GB
    assert 3 < qlora.weights_gib < 4.5 and qlora.total_gib < 6  # QLoRA: ~6 GB in practice
    assert full.total_gib > 100  # weights + fp32 master + grads + Adam: ~16 bytes/param
    assert lora.total_gib > qlora.total_gib
