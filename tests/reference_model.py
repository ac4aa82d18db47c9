"""A float64 NumPy decoder with a LongFlow KV buffer, written from the paper's rule for the tests.

Weights come from the transformers PyTorch model's state dict and RoPE
frequencies from its own rotary module, so nothing here reuses longflow_jax.
"""

from __future__ import annotations

import numpy as np


class ReferenceLongFlow:
    """Float64 Llama/Qwen decoder keeping ``budget`` slots per layer with LongFlow eviction.

    Slot s of (layer l, KV head j) holds (k, v, position).  Each step: write the
    token into ``next_slot[l, j]``, attend over valid slots, importance
    ``I[s] = sum_h p[h,s] * ||v_s||_1 / (Hq * D)`` (per_head: summed over KV
    head j's query group only, divided by group * D), invalid slots first, then
    lowest importance (lowest index on ties) becomes ``next_slot``: shared by
    all KV heads of a layer unless ``per_head``.
    """

    def __init__(self, torch_model, budget: int, per_head: bool = False):
        cfg = torch_model.config
        self.sd = {k: v.detach().double().numpy() for k, v in torch_model.state_dict().items()}
        self.inv_freq = torch_model.model.rotary_emb.inv_freq.double().numpy()
        self.n_layers = cfg.num_hidden_layers
        self.hq = cfg.num_attention_heads
        self.hkv = cfg.num_key_value_heads
        self.d = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.hq
        self.eps = cfg.rms_norm_eps
        self.tied = cfg.tie_word_embeddings
        self.budget = budget
        self.per_head = per_head
        self.k = np.zeros((self.n_layers, self.hkv, budget, self.d))
        self.v = np.zeros_like(self.k)
        self.valid = np.zeros((self.n_layers, self.hkv, budget), bool)
        self.position = np.full((self.n_layers, self.hkv, budget), -1)
        self.next_slot = np.zeros((self.n_layers, self.hkv), int)
        # Eviction keys of the last step, [kv_heads or 1, budget] per layer, for tie checks.
        self.last_keys = [None] * self.n_layers

    def _w(self, name):
        return self.sd.get(name)

    def _rms(self, x, w):
        return w * x / np.sqrt(np.mean(x * x, -1, keepdims=True) + self.eps)

    def _rope(self, x, pos):
        ang = pos * self.inv_freq
        cos, sin = np.cos(np.concatenate([ang, ang])), np.sin(np.concatenate([ang, ang]))
        half = x.shape[-1] // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    def _qkv(self, l, x, pos):
        pre = f"model.layers.{l}.self_attn."
        h = self._rms(x, self._w(f"model.layers.{l}.input_layernorm.weight"))
        out = []
        for name, heads in (("q", self.hq), ("k", self.hkv), ("v", self.hkv)):
            y = h @ self._w(pre + f"{name}_proj.weight").T
            if self._w(pre + f"{name}_proj.bias") is not None:
                y = y + self._w(pre + f"{name}_proj.bias")
            y = y.reshape(heads, self.d)
            if name in "qk" and self._w(pre + f"{name}_norm.weight") is not None:
                y = self._rms(y, self._w(pre + f"{name}_norm.weight"))
            out.append(self._rope(y, pos) if name in "qk" else y)
        return out

    def _finish_layer(self, l, x, attn):
        pre = f"model.layers.{l}."
        o = attn.reshape(-1) @ self._w(pre + "self_attn.o_proj.weight").T
        if self._w(pre + "self_attn.o_proj.bias") is not None:
            o = o + self._w(pre + "self_attn.o_proj.bias")
        x = x + o
        h = self._rms(x, self._w(pre + "post_attention_layernorm.weight"))
        g = h @ self._w(pre + "mlp.gate_proj.weight").T
        u = h @ self._w(pre + "mlp.up_proj.weight").T
        return x + (g / (1 + np.exp(-g)) * u) @ self._w(pre + "mlp.down_proj.weight").T

    def _logits(self, x):
        h = self._rms(x, self._w("model.norm.weight"))
        head = self._w("model.embed_tokens.weight") if self.tied else self._w("lm_head.weight")
        return h @ head.T

    def step(self, token: int, pos: int) -> tuple[np.ndarray, np.ndarray]:
        """Feed one token; return logits and the positions evicted ``[layers, kv_heads]`` (-1 = empty slot filled)."""
        x = self._w("model.embed_tokens.weight")[token]
        evicted = np.full((self.n_layers, self.hkv), -1)
        g = self.hq // self.hkv
        heads = np.arange(self.hkv)
        for l in range(self.n_layers):
            q, k, v = self._qkv(l, x, pos)
            s = self.next_slot[l]  # [hkv]
            evicted[l] = np.where(self.valid[l, heads, s], self.position[l, heads, s], -1)
            self.k[l, heads, s], self.v[l, heads, s] = k, v
            self.valid[l, heads, s], self.position[l, heads, s] = True, pos
            valid = np.repeat(self.valid[l], g, 0)  # [Hq, S]
            kk = np.repeat(self.k[l], g, 0)  # [Hq, S, D]
            vv = np.repeat(self.v[l], g, 0)
            logits = np.einsum("hd,hsd->hs", q, kk) / np.sqrt(self.d)
            logits[~valid] = -np.inf
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            attn = np.einsum("hs,hsd->hd", p, vv)
            contrib = p * np.abs(vv).sum(-1)  # [Hq, S]: L1 norm of p[h,s] * v_s
            if self.per_head:
                importance = contrib.reshape(self.hkv, g, -1).sum(1) / (g * self.d)
                keys = np.where(self.valid[l], importance, -1.0)
            else:
                importance = contrib.sum(0) / (self.hq * self.d)
                keys = np.where(self.valid[l, 0], importance, -1.0)[None]
            self.last_keys[l] = keys
            self.next_slot[l] = np.argmin(keys, axis=-1)  # broadcasts the shared slot to every head
            x = self._finish_layer(l, x, attn)
        return self._logits(x), evicted

    def prefill(self, prompt: list[int]) -> np.ndarray:
        """Fill slots 0..n-1 with the prompt (needs ``len(prompt) < budget``); return last logits."""
        assert len(prompt) < self.budget
        xs = self._w("model.embed_tokens.weight")[np.array(prompt)]
        n = len(prompt)
        g = self.hq // self.hkv
        for l in range(self.n_layers):
            qkv = [self._qkv(l, xs[t], t) for t in range(n)]
            q = np.stack([a[0] for a in qkv], 1)  # [Hq, n, D]
            k = np.stack([a[1] for a in qkv], 1)  # [Hkv, n, D]
            v = np.stack([a[2] for a in qkv], 1)
            logits = np.einsum("hqd,hsd->hqs", q, np.repeat(k, g, 0)) / np.sqrt(self.d)
            logits = np.where(np.tril(np.ones((n, n), bool)), logits, -np.inf)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            attn = np.einsum("hqs,hsd->qhd", p, np.repeat(v, g, 0))
            xs = np.stack([self._finish_layer(l, xs[t], attn[t]) for t in range(n)])
            self.k[l, :, :n], self.v[l, :, :n] = k, v
            self.valid[l, :, :n] = True
            self.position[l, :, :n] = np.arange(n)
            self.next_slot[l] = n
        return self._logits(xs[-1])
