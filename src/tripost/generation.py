"""Fast batched generation for the small model: the hot path of interaction and
evaluation.

How it works (a continuous-batching loop over the ordinary HF forward):

* prompts are tokenised, sorted by length and fed in groups; a group is prefilled left-padded;
* the KV cache is our own `Cache` whose layers preallocate their key/value buffers and hand the
  attention views of the filled part (no `torch.cat` per step: with HF's default DynamicCache,
  growing the cache took ~80% of CPU decode time), and attention only spans the filled part (a
  static cache would attend over its full maximum length every step);
* a row that emits EOS, a stop string or reaches `max_new_tokens` is finished; when a quarter of
  the batch is free and prompts are waiting, the free slots are **refilled**: a new group is
  prefilled and merged into the running batch (the two caches are right-aligned in a fresh buffer;
  every row keeps its own position ids and attention mask, so merged rows compute exactly what they
  would compute alone). With nothing left to refill, the batch is **shrunk** to its live rows once
  a quarter of it is finished. Attempts of 100 to 600+ tokens therefore never hold a batch back.
* fp32 by default (the caller's dtype is kept): on the measured CPU fp32 matmul is ~4x bf16.

Models whose config asks for sliding-window or non-standard caches fall back to
`model.generate` on padded batches (same outputs, slower).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
import torch.nn.functional as F

try:  # transformers >= 5
    from transformers.cache_utils import Cache, DynamicLayer
except ImportError:  # pragma: no cover
    Cache = DynamicLayer = None


@dataclass
class Generation:
    text: str  # new text only, cut before the stop string (EOS never included)
    stop_reason: str  # "eos" | "stop" | "length"
    num_tokens: int  # tokens the model generated for this prompt (the EOS / stop tokens included)


# --------------------------------------------------------------------------------------------
# KV cache with preallocated buffers
# --------------------------------------------------------------------------------------------
class _BufferLayer(DynamicLayer):
    """A DynamicLayer that writes into a preallocated [B, H, capacity, D] buffer."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.kbuf = self.vbuf = None
        self.length = 0

    def lazy_initialization(self, key_states, value_states):
        B, H, _, D = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.kbuf = torch.zeros(B, H, self.capacity, D, dtype=key_states.dtype, device=key_states.device)
        self.vbuf = torch.zeros(B, H, self.capacity, value_states.shape[-1], dtype=value_states.dtype,
                                device=value_states.device)
        self.is_initialized = True

    def set_buffers(self, kbuf, vbuf, length):
        self.kbuf, self.vbuf, self.length = kbuf, vbuf, length
        self.capacity = kbuf.shape[2]
        self.dtype, self.device = kbuf.dtype, kbuf.device
        self.keys, self.values = kbuf[:, :, :length], vbuf[:, :, :length]
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        q = key_states.shape[-2]
        end = self.length + q
        if end > self.capacity:
            raise RuntimeError(f"KV buffer overflow ({end} > {self.capacity})")
        self.kbuf[:, :, self.length:end] = key_states
        self.vbuf[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.kbuf[:, :, :end], self.vbuf[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int):
        return self.length + query_length, 0

    def get_max_length(self) -> int:
        return self.capacity


# --------------------------------------------------------------------------------------------
# lean decode step for plain LlamaForCausalLM
# --------------------------------------------------------------------------------------------
def _rms(x, norm):
    dt = x.dtype
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x32.to(dt)


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class _LeanLlama:
    """One decode step of a plain (unquantised, non-PEFT) `LlamaForCausalLM`, written with the
    model's own weights and the same operations in the same order as the HF modules, without
    the per-call machinery (mask building, kwargs plumbing, output dataclasses, hooks) that
    dominates a tiny model's decode step on CPU. Prefill still goes through the HF forward."""

    @staticmethod
    def supported(model) -> bool:
        cfg = model.config
        rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
        return (type(model).__name__ == "LlamaForCausalLM" and getattr(model, "hf_quantizer", None) is None
                and getattr(cfg, "quantization_config", None) is None and cfg.hidden_act == "silu"
                and rope in ("default", "linear", "llama3") and not getattr(model, "_hf_hook", None)
                and all(type(m).__name__ == "Linear" for m in model.model.layers[0].self_attn.children()))

    def __init__(self, model):
        self.model = model
        self.m = model.model
        a = self.m.layers[0].self_attn
        self.H = model.config.num_attention_heads
        self.Hkv = model.config.num_key_value_heads
        self.D = a.head_dim
        self.scaling = a.scaling

    def step(self, ids, pos, layers, L, mask):
        B, H, Hkv, D = ids.shape[0], self.H, self.Hkv, self.D
        h = F.embedding(ids, self.m.embed_tokens.weight)  # [B, hidden]
        cos, sin = self.m.rotary_emb(h[:, None], pos[:, None])  # [B, 1, D]
        cos, sin = cos[:, None], sin[:, None]  # [B, 1, 1, D]
        for layer, cl in zip(self.m.layers, layers):
            a, mlp = layer.self_attn, layer.mlp
            x = _rms(h, layer.input_layernorm)
            q = F.linear(x, a.q_proj.weight, a.q_proj.bias).view(B, H, 1, D)
            k = F.linear(x, a.k_proj.weight, a.k_proj.bias).view(B, Hkv, 1, D)
            v = F.linear(x, a.v_proj.weight, a.v_proj.bias).view(B, Hkv, 1, D)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cl.kbuf[:, :, L] = k[:, :, 0]
            cl.vbuf[:, :, L] = v[:, :, 0]
            cl.length = L + 1
            K, V = cl.kbuf[:, :, : L + 1], cl.vbuf[:, :, : L + 1]
            cl.keys, cl.values = K, V
            o = F.scaled_dot_product_attention(q, K, V, attn_mask=mask, scale=self.scaling, enable_gqa=H != Hkv)
            h = h + F.linear(o.reshape(B, H * D), a.o_proj.weight, a.o_proj.bias)
            x = _rms(h, layer.post_attention_layernorm)
            g = F.linear(x, mlp.gate_proj.weight, mlp.gate_proj.bias)
            u = F.linear(x, mlp.up_proj.weight, mlp.up_proj.bias)
            h = h + F.linear(F.silu(g) * u, mlp.down_proj.weight, mlp.down_proj.bias)
        h = _rms(h, self.m.norm)
        return F.linear(h, self.model.lm_head.weight, self.model.lm_head.bias)


def _new_cache(n_layers: int, capacity: int):
    return Cache(layers=[_BufferLayer(capacity) for _ in range(n_layers)])


# --------------------------------------------------------------------------------------------
# batch state
# --------------------------------------------------------------------------------------------
class _Batch:
    """Rows decoding together: one cache, a [B, capacity] validity mask, per-row positions."""

    def __init__(self, cache, valid, length, pos, next_tok, rows, n_new):
        self.cache, self.valid, self.length = cache, valid, length
        self.pos, self.next_tok = pos, next_tok  # next position id / token to feed, per row
        self.rows = rows  # prompt index per row
        self.n_new = n_new  # tokens generated so far, per row
        self.live = [True] * len(rows)

    @property
    def size(self) -> int:
        return len(self.rows)

    def n_live(self) -> int:
        return sum(self.live)


def _choose(logits, do_sample, temperature, top_p, gen):
    if not do_sample:
        return logits.argmax(-1)
    logits = logits.float() / max(temperature, 1e-5)
    probs = torch.softmax(logits, -1)
    if top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        cum = sp.cumsum(-1)
        sp = sp.masked_fill(cum - sp > top_p, 0.0)  # keep the smallest prefix with mass >= top_p
        probs = torch.zeros_like(probs).scatter_(-1, si, sp)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


class _Generator:
    def __init__(self, model, tokenizer, prompts, max_new_tokens, do_sample, temperature, top_p, stop,
                 batch_size, seed, max_input_tokens, refill_frac=0.25, shrink_frac=0.25, lean=True):
        self.model, self.tok = model, tokenizer
        self.lean = _LeanLlama(model) if lean and _LeanLlama.supported(model) else None
        self.max_new = int(max_new_tokens)
        self.do_sample, self.temperature, self.top_p = do_sample, float(temperature), float(top_p)
        self.stop = [s for s in (stop or []) if s]
        self.batch_size = max(1, int(batch_size))
        self.refill_min = max(1, int(round(self.batch_size * refill_frac)))
        self.shrink_frac = shrink_frac
        self.gen = torch.Generator().manual_seed(int(seed)) if do_sample else None
        self.eos = set(_eos_ids(model, tokenizer))
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos))
        self.n_layers = model.config.get_text_config().num_hidden_layers
        self.device = next(model.parameters()).device
        self.ids = [list(tokenizer(p)["input_ids"]) for p in prompts]
        if max_input_tokens:
            self.ids = [x[-int(max_input_tokens):] for x in self.ids]  # left-truncate (docs/method.md §5.1)
        self.out = [[] for _ in prompts]
        self.reason = [None] * len(prompts)
        self.tail = [""] * len(prompts)
        self.tail_len = max((len(s) for s in self.stop), default=0) + 8
        self._piece = {}
        self._anchor = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self._anchor_text = tokenizer.decode([self._anchor])

    # -- text pieces for stop-string checks ------------------------------------------------
    def piece(self, t: int) -> str:
        s = self._piece.get(t)
        if s is None:
            both = self.tok.decode([self._anchor, t])
            s = both[len(self._anchor_text):] if both.startswith(self._anchor_text) else self.tok.decode([t])
            self._piece[t] = s
        return s

    # -- one group: left-padded prefill into a fresh cache -----------------------------------
    def prefill(self, idx: list[int]) -> _Batch:
        lens = [len(self.ids[i]) for i in idx]
        P, B = max(lens), len(idx)
        input_ids = torch.full((B, P), self.pad, dtype=torch.long)
        valid = torch.zeros((B, P), dtype=torch.bool)
        for r, i in enumerate(idx):
            input_ids[r, P - lens[r]:] = torch.tensor(self.ids[i])
            valid[r, P - lens[r]:] = True
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(P, P, dtype=torch.bool).tril()
        mask = (causal[None] & valid[:, None, :]) | torch.eye(P, dtype=torch.bool)[None]  # pads see themselves
        cache = _new_cache(self.n_layers, P)
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask[:, None].to(self.device),
                         position_ids=pos.to(self.device), past_key_values=cache, use_cache=True, logits_to_keep=1)
        nxt = _choose(out.logits[:, -1], self.do_sample, self.temperature, self.top_p, self.gen).cpu()
        b = _Batch(cache, valid, P, torch.tensor(lens), nxt, list(idx), [0] * B)
        for r in range(B):
            self.accept(b, r, int(nxt[r]))
        return b

    def accept(self, b: _Batch, r: int, t: int) -> None:
        """Record token t for row r; mark the row finished on EOS / stop string / length."""
        i = b.rows[r]
        b.n_new[r] += 1
        if t in self.eos:
            self.reason[i], b.live[r] = "eos", False
            return
        self.out[i].append(t)
        if self.stop:
            tail = (self.tail[i] + self.piece(t))[-self.tail_len:]
            self.tail[i] = tail
            if any(s in tail for s in self.stop):
                self.reason[i], b.live[r] = "stop", False
                return
        if b.n_new[r] >= self.max_new:
            self.reason[i], b.live[r] = "length", False

    # -- merge / shrink -------------------------------------------------------------------------
    def merge(self, a: _Batch | None, n: _Batch | None) -> _Batch:
        """Live rows of `a` and all rows of `n`, right-aligned in fresh buffers."""
        parts = []
        for b in (a, n):
            if b is None:
                continue
            keep = [r for r in range(b.size) if b.live[r]]
            if not keep:
                continue
            kt = torch.tensor(keep)
            v = b.valid[kt, : b.length]
            start = int(v.float().argmax(1).min())  # drop leading columns no kept row uses
            parts.append((b, keep, kt, start, b.length - start))
        if not parts:
            return None
        span = max(p[4] for p in parts)
        remaining = max(self.max_new - b.n_new[r] for b, keep, *_ in parts for r in keep)
        cap = span + remaining + 1
        B = sum(len(p[1]) for p in parts)
        layers0 = parts[0][0].cache.layers
        new_layers = []
        for li in range(self.n_layers):
            k0 = layers0[li].kbuf
            kb = torch.zeros(B, k0.shape[1], cap, k0.shape[3], dtype=k0.dtype, device=k0.device)
            vb = torch.zeros(B, k0.shape[1], cap, layers0[li].vbuf.shape[3], dtype=k0.dtype, device=k0.device)
            off = 0
            for b, keep, kt, start, L in parts:
                ktd = kt.to(k0.device)
                lay = b.cache.layers[li]
                kb[off:off + len(keep), :, span - L:span] = lay.kbuf[ktd, :, start:b.length]
                vb[off:off + len(keep), :, span - L:span] = lay.vbuf[ktd, :, start:b.length]
                off += len(keep)
            layer = _BufferLayer(cap)
            layer.set_buffers(kb, vb, span)
            new_layers.append(layer)
        valid = torch.zeros(B, cap, dtype=torch.bool)
        pos, nxt, rows, n_new = [], [], [], []
        off = 0
        for b, keep, kt, start, L in parts:
            valid[off:off + len(keep), span - L:span] = b.valid[kt, start:b.length]
            pos.append(b.pos[kt]); nxt.append(b.next_tok[kt])
            rows += [b.rows[r] for r in keep]; n_new += [b.n_new[r] for r in keep]
            off += len(keep)
        return _Batch(Cache(layers=new_layers), valid, span, torch.cat(pos), torch.cat(nxt), rows, n_new)

    # -- one decode step -------------------------------------------------------------------------
    def step(self, b: _Batch) -> None:
        L = b.length
        b.valid[:, L] = True
        mask = b.valid[:, None, None, : L + 1].to(self.device)
        if self.lean is not None:
            logits = self.lean.step(b.next_tok.to(self.device), b.pos.to(self.device), b.cache.layers, L, mask)
        else:
            out = self.model(input_ids=b.next_tok[:, None].to(self.device), attention_mask=mask,
                             position_ids=b.pos[:, None].to(self.device), past_key_values=b.cache, use_cache=True)
            logits = out.logits[:, -1]
        b.length = L + 1
        b.pos = b.pos + 1
        nxt = _choose(logits, self.do_sample, self.temperature, self.top_p, self.gen).cpu()
        b.next_tok = nxt
        tl = nxt.tolist()
        for r in range(b.size):
            if b.live[r]:
                self.accept(b, r, tl[r])

    def run(self, progress=False) -> list[Generation]:
        order = sorted(range(len(self.ids)), key=lambda i: (len(self.ids[i]), i))
        pending = deque(order)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(order), desc="generate", leave=False)
        done_count = 0
        b: _Batch | None = None
        while pending or (b is not None and b.n_live() > 0):
            live = b.n_live() if b is not None else 0
            free = self.batch_size - live
            if pending and (b is None or free >= min(self.refill_min, len(pending)) or live == 0):
                take = [pending.popleft() for _ in range(min(free, len(pending)))]
                b = self.merge(b, self.prefill(take))
            elif b is not None and live <= b.size * (1 - self.shrink_frac):
                b = self.merge(b, None)
            if b is None:
                continue
            if b.n_live() > 0:
                self.step(b)
            if bar is not None:
                now = sum(r is not None for r in self.reason)
                bar.update(now - done_count)
                done_count = now
        if bar is not None:
            bar.close()
        return [self.finish(i) for i in range(len(self.ids))]

    def finish(self, i: int) -> Generation:
        text = self.tok.decode(self.out[i], skip_special_tokens=True)
        reason = self.reason[i] or "length"
        n = len(self.out[i]) + (1 if reason == "eos" else 0)
        if self.stop:
            cuts = [text.find(s) for s in self.stop if s in text]
            if cuts:
                text, reason = text[: min(cuts)], "stop"
        return Generation(text, reason, n)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = []
    gc = getattr(model, "generation_config", None)
    e = getattr(gc, "eos_token_id", None) if gc is not None else None
    if e is not None:
        ids += list(e) if isinstance(e, (list, tuple)) else [e]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


def _fast_path_ok(model) -> bool:
    if Cache is None:
        return False
    cfg = model.config.get_text_config()
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return False
    lt = getattr(cfg, "layer_types", None)
    if lt and any(t != "full_attention" for t in lt):
        return False
    return getattr(cfg, "is_encoder_decoder", False) is False


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, stop: list[str] | None = None, batch_size: int = 32,
             seed: int = 0, progress: bool = False, max_input_tokens: int | None = None,
             fast: bool = True, lean: bool = True) -> list[Generation]:
    """Generate a continuation of every prompt; output order = input order.

    Greedy when `do_sample` is False; otherwise temperature / top-p sampling, deterministic for
    `seed` (and the same batch_size). A generation stops at EOS, at the first occurrence of a
    `stop` string (the text is cut before it) or after `max_new_tokens` tokens.
    """
    if not prompts:
        return []
    was_training = model.training
    model.eval()
    try:
        if fast and _fast_path_ok(model):
            g = _Generator(model, tokenizer, prompts, max_new_tokens, do_sample, temperature, top_p, stop,
                           batch_size, seed, max_input_tokens, lean=lean)
            return g.run(progress)
        return _generate_hf(model, tokenizer, prompts, max_new_tokens=max_new_tokens, do_sample=do_sample,
                            temperature=temperature, top_p=top_p, stop=stop, batch_size=batch_size, seed=seed,
                            max_input_tokens=max_input_tokens)
    finally:
        if was_training:
            model.train()


def _generate_hf(model, tokenizer, prompts, *, max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0,
                 stop=None, batch_size=32, seed=0, max_input_tokens=None, sort=True) -> list[Generation]:
    """Plain `model.generate` on fixed left-padded batches (the fallback and the benchmark baseline)."""
    eos = set(_eos_ids(model, tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i])) if sort else list(range(len(prompts)))
    res: list[Generation | None] = [None] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            truncation=bool(max_input_tokens), max_length=max_input_tokens)
            dev = next(model.parameters()).device
            kw = dict(do_sample=do_sample, max_new_tokens=max_new_tokens, pad_token_id=pad,
                      eos_token_id=sorted(eos))
            if do_sample:
                torch.manual_seed(seed + s)
                kw.update(temperature=temperature, top_p=top_p, top_k=0)
            else:
                kw.update(temperature=None, top_p=None, top_k=None)
            out = model.generate(**{k: v.to(dev) for k, v in enc.items()}, **kw)
            new = out[:, enc["input_ids"].shape[1]:].tolist()
            for r, i in enumerate(idx):
                toks, reason = [], "length"
                for t in new[r]:
                    if t in eos:
                        reason = "eos"
                        break
                    toks.append(t)
                text = tokenizer.decode(toks, skip_special_tokens=True)
                n = len(toks) + (reason == "eos")
                cuts = [text.find(x) for x in (stop or []) if x and x in text]
                if cuts:
                    text, reason = text[: min(cuts)], "stop"
                res[i] = Generation(text, reason, n)
    finally:
        tokenizer.padding_side = side
    return res
