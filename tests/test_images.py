"""The image domain: IDX reader, MNIST splits, masks, networks, masked fitting, metrics, the mnist command."""

import gzip
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sdf_autodec.cli.mnist  # noqa: F401  (registers the mnist schema)
from sdf_autodec.core.engine import make_optimizer, training_step
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.core.latents import LatentTable
from sdf_autodec.images.data import DataConfig, load_mnist, load_splits, pad_images
from sdf_autodec.images.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxError, idx_bytes, read_idx
from sdf_autodec.images.latent_space import cluster_scores, interpolate
from sdf_autodec.images.masks import center_square, half, make_mask, random_pixels
from sdf_autodec.images.metrics import masked_scores
from sdf_autodec.images.run import MnistConfig, validate
from sdf_autodec.images.loss import squared_error
from sdf_autodec.images.observations import pixel_observations
from sdf_autodec.images.train import fit_codes
from sdf_autodec.nn.conv import ConvAutoencoder, ConvEncoder, ConvNetConfig, CoordConvDecoder

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").is_file(), reason=f"MNIST not found at {MNIST} (../shared/data/mnist)")

# md5 of the uncompressed files, from ../shared/data/README.md
MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
TINY = ConvNetConfig(latent_size=4, channels=[4, 8, 8])


def cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "sdf_autodec.cli.main", *args], capture_output=True, text=True, timeout=timeout)


def write_fake_mnist(folder: Path, n_train=60, n_test=30, n_train_labels=None, seed=0) -> Path:
    """Four gzipped IDX files of random 28x28 'digits' in the standard names."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, n_labels in (("train", n_train, n_train_labels or n_train), ("t10k", n_test, n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n_labels) % 10).astype(np.uint8)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return folder


# -- IDX ---------------------------------------------------------------------------------------


def test_idx_round_trip_plain_and_gzipped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = idx_bytes(images)
    assert data[:4] == b"\x00\x00\x08\x03" and int.from_bytes(data[:4], "big") == IMAGES_MAGIC
    (tmp_path / "a.idx").write_bytes(data)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(data))
    for name in ("a.idx", "a.idx.gz"):
        back = read_idx(tmp_path / name, IMAGES_MAGIC)
        assert back.dtype == np.uint8 and np.array_equal(back, images)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)  # another type code, big-endian on disk
    (tmp_path / "f.idx").write_bytes(idx_bytes(floats))
    assert np.array_equal(read_idx(tmp_path / "f.idx"), floats)


def _one_line_error(path, expected_magic, match):
    with pytest.raises(IdxError) as e:
        read_idx(path, expected_magic)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and match in message, message


def test_idx_bad_input_is_one_line_naming_the_file(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    good = idx_bytes(labels)
    cases = {
        "not_idx.gz": (gzip.compress(b"\x12\x34\x08\x01" + good[4:]), "bad magic number"),
        "images_as_labels.gz": (gzip.compress(idx_bytes(np.zeros((2, 2, 2), np.uint8))), "magic number 2051, expected 2049"),
        "truncated_data.gz": (gzip.compress(good[:-3]), "truncated"),
        "truncated_header.gz": (gzip.compress(good[:6]), "truncated header"),
        "too_long.gz": (gzip.compress(good + b"\x00\x00"), "2 bytes beyond"),
        "broken_stream.gz": (gzip.compress(good)[:-12], "broken gzip stream"),
        "empty": (b"", "too short"),
    }
    for name, (data, match) in cases.items():
        (tmp_path / name).write_bytes(data)
        _one_line_error(tmp_path / name, LABELS_MAGIC, match)
    _one_line_error(tmp_path / "absent.gz", LABELS_MAGIC, "not found")


def test_label_count_must_match_images(tmp_path):
    folder = write_fake_mnist(tmp_path / "m", n_train=20, n_train_labels=19)
    with pytest.raises(IdxError, match="19 labels for the 20 images.*wrong count") as e:
        load_mnist(folder, "train")
    assert "train-labels-idx1-ubyte.gz" in str(e.value)
    with pytest.raises(FileNotFoundError, match="MNIST data directory not found"):
        load_mnist(tmp_path / "absent", "train")


@needs_mnist
def test_reader_reproduces_the_official_md5s():
    for name, md5 in MD5.items():
        array = read_idx(MNIST / name, IMAGES_MAGIC if "images" in name else LABELS_MAGIC)
        assert hashlib.md5(idx_bytes(array)).hexdigest() == md5, name
    images, labels = load_mnist(MNIST, "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


# -- data and masks ---------------------------------------------------------------------------


def test_padding_and_seeded_disjoint_splits(tmp_path):
    folder = write_fake_mnist(tmp_path / "m", n_train=60, n_test=30)
    raw, _ = load_mnist(folder, "train")
    padded = pad_images(raw[:2])
    assert padded.shape == (2, 1, 32, 32) and padded.dtype == torch.float32
    assert torch.equal(padded[:, 0, 2:30, 2:30], torch.from_numpy(raw[:2].astype(np.float32) / 255))
    assert padded[:, :, :2].abs().sum() == 0 and padded[:, :, :, 30:].abs().sum() == 0
    cfg = DataConfig(train_size=40, val_size=10, test_size=25)
    a, b = load_splits(folder, cfg, seed=3), load_splits(folder, cfg, seed=3)
    assert torch.equal(a.train.index, b.train.index) and torch.equal(a.test.images, b.test.images)
    assert not set(a.train.index.tolist()) & set(a.val.index.tolist())
    assert (len(a.train), len(a.val), len(a.test)) == (40, 10, 25)
    assert not torch.equal(load_splits(folder, cfg, seed=4).train.index, a.train.index)
    with pytest.raises(ValueError, match="exceeds the 60 training images"):
        load_splits(folder, DataConfig(train_size=55, val_size=10, test_size=5))


def test_masks():
    for s in (8, 12, 16, 20):
        m = center_square(s)
        assert m.shape == (1, 1, 32, 32) and (m == 0).sum() == s * s
        rows, cols = torch.nonzero(m[0, 0] == 0, as_tuple=True)
        assert rows.float().mean() == 15.5 and cols.float().mean() == 15.5  # centred
    r = random_pixels(6, 0.5, generator=torch.Generator().manual_seed(0))
    assert r.shape == (6, 1, 32, 32) and ((r == 0).flatten(1).sum(1) == 512).all()
    assert not torch.equal(r[0], r[1])  # drawn per image
    assert torch.equal(r, random_pixels(6, 0.5, generator=torch.Generator().manual_seed(0)))
    top = half("top")
    assert (top[0, 0, :16] == 0).all() and (top[0, 0, 16:] == 1).all()
    assert torch.equal(make_mask("top_half", 3), top.expand(3, 1, 32, 32))
    assert ((make_mask("random25", 2, generator=torch.Generator().manual_seed(1)) == 0).flatten(1).sum(1) == 256).all()
    with pytest.raises(ValueError, match="unknown mask"):
        make_mask("diagonal", 1)
    with pytest.raises(ValueError, match="does not fit"):
        center_square(40)


# -- networks, fitting, metrics ---------------------------------------------------------------


def test_network_output_shapes():
    cfg = ConvNetConfig(latent_size=16, channels=[8, 16, 32])
    x = torch.rand(3, 1, 32, 32)
    assert ConvEncoder(cfg)(x).shape == (3, 16)
    ae = ConvAutoencoder(cfg)
    assert ae(x).shape == (3, 1, 32, 32) and ae.encode(x).shape == (3, 16)
    dec = CoordConvDecoder(cfg)
    z = torch.randn(5, 16)
    out = dec(z, torch.zeros(5, 0, 2))
    assert out.shape == (5, 1, 32, 32) and torch.equal(out, dec(z))  # queries are ignored
    assert CoordConvDecoder(ConvNetConfig(latent_size=4, image_size=16, channels=[4, 4]))(torch.zeros(2, 4)).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="codes have shape"):
        dec(torch.zeros(5, 15))
    with pytest.raises(ValueError, match="image_size=32 does not fit"):
        ConvEncoder(ConvNetConfig(channels=[8, 16]))


def test_masked_fitting_uses_only_visible_pixels_and_lowers_the_loss():
    torch.manual_seed(0)
    dec = CoordConvDecoder(TINY)
    images = torch.rand(4, 1, 32, 32)
    mask = center_square(12)
    fit = FitConfig(iterations=40, lr=5e-2, init_std=0.0, code_reg_weight=1e-4)
    codes, losses = fit_codes(dec, images, mask, TINY.latent_size, fit)
    changed = images.clone()
    changed[mask.expand_as(images) == 0] = torch.rand(int((mask == 0).sum()) * 4)  # other hidden pixels
    codes2, losses2 = fit_codes(dec, changed, mask, TINY.latent_size, fit)
    assert torch.equal(codes, codes2) and torch.equal(losses, losses2)
    unmasked, _ = fit_codes(dec, changed, None, TINY.latent_size, fit)
    assert not torch.allclose(unmasked, codes)  # without the mask the hidden pixels do matter
    obs = pixel_observations(images, mask)
    start = (squared_error(dec(torch.zeros(4, TINY.latent_size)), obs) * obs.weights).flatten(1).sum(1) / obs.weights.flatten(1).sum(1)
    assert (losses < start).all()
    # batching does not change a fit: two batches of 2 give the codes of one batch of 4
    split, _ = fit_codes(dec, images, mask, TINY.latent_size, fit, batch_size=2)
    assert torch.allclose(split, codes, atol=1e-5)


def test_core_training_step_trains_the_image_decoder_and_codes():
    torch.manual_seed(0)
    dec = CoordConvDecoder(TINY)
    table = LatentTable(8, TINY.latent_size, 0.1, generator=torch.Generator().manual_seed(0))
    opt = make_optimizer(dec, table, 5e-3, 1e-2, weight_decay=1e-5)
    images = pad_images(np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8))
    index = torch.arange(8)
    first = training_step(dec, table, index, pixel_observations(images), squared_error, opt, 1e-4)
    for _ in range(30):
        last = training_step(dec, table, index, pixel_observations(images), squared_error, opt, 1e-4)
    assert last.data < 0.5 * first.data and last.prior > 0


def test_scores_and_cluster_measures():
    truth = torch.zeros(2, 1, 32, 32)
    mask = center_square(8)
    pred = truth + 0.5 * (1 - mask)  # off by 0.5 on the hidden square only
    s = masked_scores(pred, truth, mask)
    assert math.isclose(s["mse_hidden"], 0.25, rel_tol=1e-6) and math.isclose(s["psnr_hidden"], 10 * math.log10(4), rel_tol=1e-6)
    assert math.isclose(s["mse_whole"], 0.25 * 64 / 1024, rel_tol=1e-6)
    assert masked_scores(truth + 2.0, truth + 1.0, mask)["mse_whole"] == 0  # predictions are clamped to [0, 1]
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    centres = torch.eye(4, 6) * 10
    tight = centres[labels] + 0.1 * torch.randn(200, 6, generator=g)
    scores = cluster_scores(tight[:150], labels[:150], tight[150:], labels[150:])
    assert scores["knn_accuracy"] == 1.0 and scores["silhouette"] > 0.9
    noise = torch.randn(200, 6, generator=g)
    assert cluster_scores(noise[:150], labels[:150], noise[150:], labels[150:])["silhouette"] < 0.1
    z = interpolate(torch.zeros(2, 3), torch.ones(2, 3), torch.tensor([0.0, 0.25, 1.0]))
    assert z.shape == (2, 3, 3) and torch.allclose(z[:, 1], torch.full((2, 3), 0.25))


# -- configuration and the command ------------------------------------------------------------


def test_mnist_presets_compose_and_share_one_code_prior():
    with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
        full = OmegaConf.to_object(compose(config_name="mnist"))
        quick = OmegaConf.to_object(compose(config_name="mnist", overrides=["preset=quick", "ad.code_reg_weight=0.003"]))
    assert isinstance(full, MnistConfig) and full.data.train_size == 10_000 and full.data.test_size >= 1000
    assert full.center_sizes == [8, 12, 16, 20] and full.net.latent_size == 32
    assert quick.data.train_size < 1000 and quick.fit.code_reg_weight == quick.ad.code_reg_weight == 0.003
    validate(full)
    with pytest.raises(ValueError, match="code prior must be the same"):
        validate(MnistConfig(fit=FitConfig(code_reg_weight=1.0)))
    with pytest.raises(ValueError, match="unknown stage"):
        validate(MnistConfig(stages=["train-ae", "dance"]))


def test_missing_data_directory_is_one_line(tmp_path):
    out = cli("mnist", f"data_dir={tmp_path / 'absent'}", f"output={tmp_path / 'out'}", "preset=quick")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "absent: MNIST data directory not found" in out.stderr


def test_corrupt_file_in_the_data_directory_names_it(tmp_path):
    folder = write_fake_mnist(tmp_path / "m")
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x00" * 100))
    with pytest.raises(IdxError) as e:
        load_splits(folder, DataConfig(train_size=10, val_size=10, test_size=5))
    assert "\n" not in str(e.value) and "t10k-images-idx3-ubyte.gz: truncated" in str(e.value)


@needs_mnist
def test_quick_preset_end_to_end(tmp_path):
    out_dir = tmp_path / "mnist"
    out = cli("mnist", f"output={out_dir}", f"data_dir={MNIST}", "preset=quick", "progress=false")
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((out_dir / "results.json").read_text())
    keys = {"mse_hidden", "psnr_hidden", "mse_whole", "psnr_whole"}

    def check(m):
        assert set(m) >= keys and all(isinstance(m[k], float) and math.isfinite(m[k]) and m[k] >= 0 for k in keys), m

    assert set(results["center"]) == {"8", "12", "16", "20"}
    baselines = {"ae_mask_trained", "mean_fill", "retrieval"}
    for entry in results["center"].values():
        assert set(entry) >= {"ae_masked_input", "ae_masked_loss", "ad"} | baselines
        for m in entry.values():
            check(m)
            assert 0 <= m["digit_accuracy"] <= 1
    for name in ("random50", "top_half"):
        assert set(results[name]) >= {"ae", "ad"} | baselines
        for m in results[name].values():
            check(m)
            assert 0 <= m["digit_accuracy"] <= 1
        assert results[name]["ae_mask_trained"] == results[name]["ae"]  # the same AE under its new name
    assert 0 <= results["full"]["ad"]["digit_accuracy"] <= 1
    assert "ae_equal_time" in results["full"] and "ae_equal_time" in results["center"]["12"]
    assert len(results["training"]["ae_equal_time"]["history"]) >= 1
    assert set(results["collapse"]["rows"]) == {"ae", "ae_zero_input_on_zeros", "ae_zero_input_on_images", "noise", "onehot_noise", "fixed_random", "ad"}
    midpoint = results["interpolation"]["midpoint"]
    assert midpoint["pairs"] == 16 and all(0 <= midpoint[m]["confidence"] <= 1 for m in ("ae", "ad", "pixel_average"))
    cost = results["inference_cost"]
    assert [r["iterations"] for r in cost["ad"]] == [5, 10] and cost["ae"]["ms_per_image"] > 0
    ad_history = results["training"]["ad"]["history"]
    assert math.isfinite(ad_history[-1]["val_unfitted"]) and ad_history[-1]["val_unfitted"] > ad_history[-1]["val"]  # fitting matters
    assert (out_dir / "ae_masked_loss_regions.png").stat().st_size > 1000
    assert set(results["generalisation"]["mse"]["ad"]) == {"test_digits_0-4", "test_digits_5-9", "sklearn_digits_8x8"}
    assert results["generation"]["scores"]["ad"]["classes_seen"] >= 1 and (out_dir / "generation.png").stat().st_size > 1000
    cells = results["capacity"]["cells"]
    assert set(cells) == {"ae_linear_8", "ad_linear_8", "ae_conv_8", "ad_conv_8"}
    assert all(0 <= c[k] <= 1 for c in cells.values() for k in ("probe_accuracy", "probe_accuracy_few", "knn_accuracy", "transfer_accuracy"))
    assert results["classifier"]["test_images"] == 10_000 and 0 <= results["classifier"]["test_accuracy"] <= 1
    for model in ("ae", "ad"):
        s = results["clusters"][model]
        assert 0 <= s["knn_accuracy"] <= 1 and -1 <= s["silhouette"] <= 1
    for figure in ("loss_curves.png", "completion_center12.png", "tsne.png", "interpolation_strip.png", "ad_progress.png"):
        assert (out_dir / figure).stat().st_size > 1000, figure
    report = (out_dir / "report.md").read_text()
    assert "| centre 8x8 | ad |" in report and "| centre 8x8 | retrieval |" in report and "![tsne](tsne.png)" in report
    assert "Highest digit accuracy" in report and "Lowest MSE on the hidden pixels" in report
    page = (out_dir / "report.html").read_text()  # the same tables and figures, self-contained
    assert "<td class=\"text\">centre 8x8</td>" in page and page.count('src="data:image/png;base64,') >= 5
    # a later stage alone reuses the trained models
    again = cli("mnist", f"output={out_dir}", f"data_dir={MNIST}", "preset=quick", "progress=false", "stages=[tsne]")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out_dir / "results.json").read_text())["clusters"] == results["clusters"]


def test_code_cache_key_tells_apart_decoders_whose_weights_sum_alike(tmp_path):
    from sdf_autodec.images.store import CodeCache, weights_digest

    a = torch.nn.Linear(2, 2)
    b = torch.nn.Linear(2, 2)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        b.weight.copy_(torch.tensor([[4.0, 3.0], [2.0, 1.0]]))  # the same sum, the same rounded sums per tensor
        a.bias.zero_()
        b.bias.zero_()
    assert weights_digest(a) != weights_digest(b) and weights_digest(a) == weights_digest(a)
    cache = CodeCache(tmp_path / "codes.pt")
    assert cache.read("k") is None
    cache.write(weights_digest(a), torch.ones(3, 2))
    assert torch.equal(cache.read(weights_digest(a)), torch.ones(3, 2)) and cache.read(weights_digest(b)) is None
    (tmp_path / "codes.pt").write_bytes(b"not a tensor file")
    assert cache.read(weights_digest(a)) is None  # only a cache: unreadable means fit again


def test_mean_fill_and_retrieval_are_the_trivial_answers():
    from sdf_autodec.images.baselines import mean_fill, nearest_on_visible, retrieval
    from sdf_autodec.images.masks import make_mask

    g = torch.Generator().manual_seed(0)
    training = torch.rand(50, 1, 32, 32, generator=g)
    masks = make_mask("random50", 6, 32, g)
    test = training[[3, 17, 17, 40, 0, 49]].clone()
    filled = mean_fill(test, masks, training)
    hidden = masks == 0
    mean = training.mean(0, keepdim=True).expand_as(test)
    assert torch.equal(filled[hidden], mean[hidden]) and torch.equal(filled[~hidden], test[~hidden])
    # a test image that is a training image is retrieved exactly, whatever is hidden
    completed, index = retrieval(test, masks, training)
    assert index.tolist() == [3, 17, 17, 40, 0, 49] and torch.allclose(completed, test)
    # the distance counts the visible pixels only: a training image that differs only where the
    # test image is hidden is as near as the test image itself
    centre = make_mask("center12", 1, 32)
    other = test[:1].clone()
    other[centre.expand_as(other) == 0] = 1.0 - other[centre.expand_as(other) == 0]
    bank = torch.cat([torch.rand(5, 1, 32, 32, generator=g), other])
    assert nearest_on_visible(test[:1], centre, bank).item() == 5
    # naive check of the three-product distance
    x, m = test[1:2], masks[1:2]
    naive = ((m * (x - training)) ** 2).flatten(1).sum(1).argmin().item()
    assert nearest_on_visible(x, m, training).item() == naive


@needs_mnist
def test_digit_classifier_is_accurate_on_the_real_test_images():
    from sdf_autodec.images.classifier import ClassifierConfig, digit_accuracy, make_classifier, train_classifier
    from sdf_autodec.images.data import load_split

    torch.manual_seed(0)
    cfg = ClassifierConfig(epochs=2)
    train = load_split(MNIST, "train", 32, count=12000, seed=0)
    test = load_split(MNIST, "test", 32, count=2000, seed=0)
    model = make_classifier(cfg)
    result = train_classifier(model, train.images, train.labels, cfg, seed=0, progress=False)
    assert result["history"][0]["train_accuracy"] > 0.5
    assert digit_accuracy(model, test.images, test.labels) > 0.93  # 12 000 images, two epochs (all 60 000, three: 0.986)
    assert digit_accuracy(model, torch.zeros(100, 1, 32, 32), torch.full((100,), 3)) < 0.9  # not a constant answer


def _toy_digits(n: int = 64, seed: int = 0):
    """Two 'digits': a class template (a bright square, left or right) plus per-image noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    templates = torch.zeros(2, 1, 32, 32)
    templates[0, :, 8:24, 4:14] = 0.8
    templates[1, :, 8:24, 18:28] = 0.8
    images = (templates[labels] + 0.15 * torch.rand(n, 1, 32, 32, generator=g)).clamp(0, 1)
    return images, labels


def test_collapse_rows_reach_their_optima_on_a_toy_set():
    """The one-hot decoder's output approaches its class mean, the noise decoder's the global mean,
    and the fixed random codes never move."""
    from sdf_autodec.images.collapse import CollapseConfig, class_means, code_source, collapse_scores, input_size, train_on_codes
    from sdf_autodec.images.complete import ad_decode

    images, labels = _toy_digits()
    net = ConvNetConfig(latent_size=4, channels=[4, 8, 8])
    cfg = CollapseConfig(epochs=40, batch_size=16, lr=3e-3)
    global_mean, by_class = images.mean(0, keepdim=True), class_means(images, labels)
    scores = {}
    for kind in ("noise", "onehot_noise", "fixed_random"):
        torch.manual_seed(0)
        decoder = CoordConvDecoder(ConvNetConfig(**{**vars(net), "latent_size": input_size(kind, 4)}))
        source = code_source(kind, 4, labels, 0.1, seed=0)
        before = source(torch.arange(8), torch.Generator().manual_seed(1)).clone()
        train_on_codes(decoder, images, source, cfg, seed=0, name=kind, progress=False)
        after = source(torch.arange(8), torch.Generator().manual_seed(2))
        if kind == "fixed_random":
            assert torch.equal(before, after)  # never updated, whatever the generator
        else:
            assert not torch.equal(before, after)  # fresh noise at every draw
        outputs = ad_decode(decoder, source(torch.arange(len(images)), torch.Generator().manual_seed(3)))
        scores[kind] = collapse_scores(outputs, images, labels, global_mean, by_class)
    between = (by_class[labels] - global_mean).pow(2).mean().item()  # how far the class means lie from the global mean
    assert scores["onehot_noise"]["mse_class_mean"] < 0.3 * between < scores["onehot_noise"]["mse_global_mean"]
    assert scores["noise"]["mse_global_mean"] < 0.3 * between < scores["noise"]["mse_class_mean"]
    assert scores["noise"]["output_variance"] < 0.2 * scores["onehot_noise"]["output_variance"], (scores, between)


def test_capacity_decoders_linear_is_affine_and_all_shape_right():
    from sdf_autodec.images.capacity import DECODERS, make_decoder, probe_scores

    net = ConvNetConfig(latent_size=6, channels=[4, 8, 8])
    z1, z2 = torch.randn(3, 6), torch.randn(3, 6)
    for kind in DECODERS:
        out = make_decoder(kind, net, hidden=16)(z1)
        assert out.shape == (3, 1, 32, 32), kind
    linear = make_decoder("linear", net)
    with torch.no_grad():
        mixed = linear(0.3 * z1 + 0.7 * z2)
        assert torch.allclose(mixed, 0.3 * linear(z1) + 0.7 * linear(z2), atol=1e-5)  # affine: a linear map and a bias
        mlp = make_decoder("mlp", net, hidden=16)
        assert not torch.allclose(mlp(0.3 * z1 + 0.7 * z2), 0.3 * mlp(z1) + 0.7 * mlp(z2), atol=1e-5)
    # probes: separable codes are classified perfectly, with all labels and with few
    labels = torch.arange(200) % 4
    codes = torch.nn.functional.one_hot(labels, 4).double() * 5 + 0.1 * torch.randn(200, 4, dtype=torch.float64)
    scores = probe_scores(codes[:150], labels[:150], codes[150:], labels[150:], few=8, seed=0)
    assert scores == {"probe_accuracy": 1.0, "probe_accuracy_few": 1.0, "knn_accuracy": 1.0}


def test_generation_helpers_against_naive_computations():
    from sdf_autodec.images.generation import gaussian_samples, load_sklearn_digits, nearest_mse

    digits = load_sklearn_digits(32)
    assert digits.images.shape == (1797, 1, 32, 32) and 0 <= digits.images.min() and digits.images.max() <= 1
    assert digits.images[..., :6, :].abs().max() == 0 and set(digits.labels.tolist()) == set(range(10))  # centred on a black border
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(4000, 3, generator=g) @ torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.1]]) + torch.tensor([1.0, -2.0, 3.0])
    drawn = gaussian_samples(codes, 20000, torch.Generator().manual_seed(1))
    assert torch.allclose(drawn.mean(0), codes.mean(0), atol=0.05)
    assert torch.allclose(torch.cov(drawn.T), torch.cov(codes.T), atol=0.1)
    bank, images = torch.rand(30, 1, 32, 32, generator=g), torch.rand(5, 1, 32, 32, generator=g)
    naive = torch.stack([((bank - x).pow(2).flatten(1).mean(1)).min() for x in images])
    assert torch.allclose(nearest_mse(images, bank), naive, atol=1e-5)
    assert nearest_mse(bank[:3], bank).abs().max() < 1e-5  # a training image is its own nearest


def test_seeds_aggregate_to_mean_std_runs_and_format_as_such():
    from sdf_autodec.images.seeds import Stat, aggregate, stats_view

    runs = [{"a": {"x": 1.0, "n": 5, "name": "ad"}, "h": [{"v": 2.0}, {"v": None}], "k": 3},
            {"a": {"x": 3.0, "n": 5, "name": "ad"}, "h": [{"v": 4.0}, {"v": None}], "k": 4}]
    merged = aggregate(runs)
    assert merged["a"]["x"] == {"mean": 2.0, "std": pytest.approx(2**0.5), "runs": [1.0, 3.0]}
    assert merged["a"]["n"] == 5 and merged["a"]["name"] == "ad"  # constants stay as they are
    assert merged["k"]["runs"] == [3, 4] and merged["h"][1]["v"] is None  # never finite: kept as None
    view = stats_view(merged)
    assert isinstance(view["a"]["x"], Stat) and view["a"]["x"] == 2.0 and view["h"][1]["v"] is None
    assert f"{view['a']['x']:.2f}" == "2.00 ± 1.41" and max(view["a"]["x"], 1.5) == 2.0
