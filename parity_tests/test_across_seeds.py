"""Confusion matrices and agreement across seeds: the per-cell Welch t against scipy's own Welch test,
the cells it must not divide, and the agreement table's pairs and reading."""
import numpy as np
import pytest
from scipy import stats

from cifar_common.analysis import across_seeds
from cifar_common.analysis.across_seeds import (Predicted, agreement_pairs, agreement_reading, confusion_across_seeds,
                                                welch)


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on the constant Keras column
def test_welch_t_and_p_match_scipy_per_element():
    """Every element's t and p equal scipy's `ttest_ind(equal_var=False)`, one side's spread zero included."""
    rng = np.random.default_rng(3)
    keras, port = rng.normal(0.5, 0.05, size=(4, 3, 3)), rng.normal(0.52, 0.08, size=(3, 3, 3))
    keras[:, 0, 0] = 0.25  # no spread on the Keras side only
    result = welch(keras, port)
    expected = stats.ttest_ind(port, keras, axis=0, equal_var=False)
    np.testing.assert_allclose(result["t"], expected.statistic, rtol=1e-12)
    np.testing.assert_allclose(result["p"], expected.pvalue, rtol=1e-10)
    np.testing.assert_allclose(result["difference"], port.mean(axis=0) - keras.mean(axis=0), rtol=1e-12)
    assert not result["both_zero"].any()


def test_a_cell_with_no_spread_on_either_side_is_marked_not_divided():
    """Equal counts in every run: no t, no p, marked; a difference of the means is still reported."""
    keras, port = np.full((3, 2), 0.2), np.full((2, 2), 0.3)
    port[:, 1] = [0.1, 0.5]
    result = welch(keras, port)
    assert result["both_zero"].tolist() == [True, False]
    assert np.isnan(result["t"][0]) and np.isnan(result["p"][0])
    assert result["difference"][0] == pytest.approx(0.1)
    assert np.isfinite(result["t"][1])


def test_welch_needs_two_runs_a_side():
    with pytest.raises(ValueError, match="2 runs a side"):
        welch(np.zeros((1, 2)), np.zeros((3, 2)))


def test_confusion_across_seeds_normalises_rows_and_reads_recall_off_the_diagonal():
    """Rows of each mean matrix sum to 1; recall is the diagonal share; cells tested + untested = all."""
    rng = np.random.default_rng(0)
    confusions = [rng.integers(0, 50, size=(5, 5)) + np.eye(5, dtype=int) * 400 for _ in range(5)]
    result = confusion_across_seeds(confusions[:3], confusions[3:])
    np.testing.assert_allclose(result["keras_mean"].sum(axis=1), 1.0)
    np.testing.assert_allclose(result["port_recall"][0], np.diag(confusions[3]) / confusions[3].sum(axis=1))
    assert result["cells_tested"] + result["cells_both_spreads_zero"] == 25
    assert result["cells_expected_by_chance"] == pytest.approx(across_seeds.SIGNIFICANCE * result["cells_tested"])


def test_one_run_a_side_gives_means_without_t():
    one = np.diag([10, 10]) + 1
    result = confusion_across_seeds([one], [one, one])
    assert "cells" not in result and result["keras_n"] == 1


def test_a_class_with_no_images_is_refused():
    with pytest.raises(ValueError, match="no images"):
        across_seeds.row_normalised(np.array([[3, 1], [0, 0]]))


def test_agreement_pairs_and_reading():
    """Every pair once, with its kind and accuracies; the cross mean is read against the same-framework range."""
    truth = np.arange(100) % 10
    def run(framework, seed, wrong):  # noqa: E306
        predicted = truth.copy()
        predicted[wrong] = (predicted[wrong] + 1) % 10
        return Predicted(f"{framework}{seed}", framework, seed, predicted, float(np.mean(predicted == truth)))
    runs = [run("keras", 2, slice(0, 20)), run("keras", 3, slice(10, 30)),
            run("lightning", 2, slice(5, 25)), run("lightning", 3, slice(40, 60))]
    pairs = agreement_pairs(runs)
    assert len(pairs) == 6
    by_names = {(p["a"], p["b"]): p for p in pairs}
    assert by_names[("keras2", "keras3")]["agreement"] == pytest.approx(0.8)  # 20 images differ
    assert by_names[("keras2", "keras3")]["kind"] == "same framework"
    assert by_names[("keras2", "lightning2")]["kind"] == "across frameworks"
    reading = agreement_reading(pairs)
    assert reading["same_framework_range"] == [pytest.approx(0.6), pytest.approx(0.8)]
    assert reading["position"] == "inside"  # cross mean (0.9 + 0.6 + 0.9 + 0.6) / 4
    assert reading["cross_agreement"] == pytest.approx(0.75)


def test_one_same_framework_pair_is_no_range():
    truth = np.zeros(10, dtype=int)
    runs = [Predicted(n, f, 1 + i, truth, 1.0) for i, (n, f) in enumerate([("k1", "keras"), ("k2", "keras"), ("p", "lightning")])]
    reading = agreement_reading(agreement_pairs(runs))
    assert reading["same_framework_pairs"] == 1 and reading["position"] is None
