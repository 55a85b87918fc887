import torch

from trainables.data.augment import BatchAugmenter, random_erasing, random_pad_crop, to_normalized_float


def images(b=6, h=32, w=16):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, h, w, 3), generator=g, dtype=torch.uint8)


def test_output_is_normalized_nchw_float():
    out = BatchAugmenter(flip=True, pad=2, erasing_p=0.5)(images())
    assert out.shape == (6, 3, 32, 16) and out.dtype == torch.float32


def test_no_augmentation_equals_plain_normalization():
    x = images()
    out = BatchAugmenter(flip=False, pad=0, erasing_p=0.0)(x)
    assert torch.equal(out, to_normalized_float(x))


def test_pad_crop_shifts_content_within_the_pad():
    x = to_normalized_float(images(b=1))
    g = torch.Generator().manual_seed(3)
    out = random_pad_crop(x, 3, g)
    # Some shift (dy, dx) in [-3, 3]^2 maps the output back onto the input where they overlap.
    matches = []
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            shifted = torch.roll(x, shifts=(-dy, -dx), dims=(2, 3))
            inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
            matches.append(torch.equal(out[inner], shifted[inner]))
    assert any(matches)


def test_random_erasing_probability_and_area():
    x = torch.zeros(400, 3, 32, 16)
    g = torch.Generator().manual_seed(0)
    out = random_erasing(x, p=0.5, area=(0.02, 0.4), ratio=(0.3, 3.3), generator=g)
    erased = (out != 0).flatten(1).any(1)
    assert 0.4 < erased.float().mean() < 0.6
    fraction = (out[erased] != 0).float().mean(dim=(1, 2, 3))
    assert fraction.min() >= 0.015 and fraction.max() <= 0.45
    assert torch.equal(random_erasing(x, 0.0, (0.02, 0.4), (0.3, 3.3), g), x)


def test_same_seed_same_augmentation():
    x = images()
    a = BatchAugmenter(pad=2, erasing_p=0.5, seed=4)(x)
    b = BatchAugmenter(pad=2, erasing_p=0.5, seed=4)(x)
    assert torch.equal(a, b)


def test_indices_change_nothing_without_the_composite():
    x = images()
    index = torch.arange(6)
    assert torch.equal(BatchAugmenter(pad=2, erasing_p=0.5, seed=1)(x, index), BatchAugmenter(pad=2, erasing_p=0.5, seed=1)(x))


def test_fused_flip_pad_crop_equals_the_separate_steps():
    from trainables.data.augment import flip_pad_crop, random_flip

    x = images(b=16, h=24, w=12)
    for flip, pad in [(True, 3), (False, 4), (True, 0), (False, 0), (True, 30)]:
        g = torch.Generator().manual_seed(7)
        reference = random_pad_crop(random_flip(to_normalized_float(x), g) if flip else to_normalized_float(x), pad, g)
        for vectorized in (False, True):
            out = flip_pad_crop(x, flip, pad, torch.Generator().manual_seed(7), vectorized=vectorized)
            assert torch.equal(out, reference), (flip, pad, vectorized)


def test_random_erasing_paths_agree_on_the_rectangles():
    x = torch.zeros(64, 3, 32, 16)
    loop = random_erasing(x, 0.5, (0.02, 0.4), (0.3, 3.3), torch.Generator().manual_seed(2), vectorized=False)
    batched = random_erasing(x, 0.5, (0.02, 0.4), (0.3, 3.3), torch.Generator().manual_seed(2), vectorized=True)
    # Same rectangles (the noise inside them is drawn differently); the input is not modified.
    assert torch.equal(loop != 0, batched != 0) and not x.any()
