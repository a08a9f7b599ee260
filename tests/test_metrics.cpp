// The evaluation metrics (gradscope/metrics.hpp) on small cases computed by hand: the values in
// the comments are worked out from the definitions, not from the code under test. Ratios of
// small integers are compared to 1e-15 relative (a couple of roundings of a division).
#include "support/testing.hpp"

#include <gradscope/metrics.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;
using Catch::Matchers::WithinRel;

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// Six samples, three classes. Per row: the scores, the label, the predicted class (the first
// highest; a NaN counts as highest) and how many classes rank above the label.
//   row 0: [2, 1, 0]        label 0  predicted 0  rank 0
//   row 1: [0.1, 0.5, 0.4]  label 2  predicted 1  rank 1
//   row 2: [1, 1, 0]        label 1  predicted 0  rank 1  (a tie goes to the lower class)
//   row 3: [0, 0, 3]        label 2  predicted 2  rank 0
//   row 4: [5, -1, 4]       label 1  predicted 0  rank 2
//   row 5: [nan, 0, 9]      label 2  predicted 0  rank 1
Matrix<double> scores() {
    Matrix<double> s(6, 3);
    s << 2, 1, 0, 0.1, 0.5, 0.4, 1, 1, 0, 0, 0, 3, 5, -1, 4, nan, 0, 9;
    return s;
}
const std::vector<int> labels = {0, 2, 1, 2, 1, 2};

}  // namespace

TEST_CASE("accuracy and top-k accuracy count the ranks worked out by hand", "[metrics]") {
    REQUIRE(metrics::predictions(scores()) == std::vector<int>{0, 1, 0, 2, 0, 0});
    REQUIRE_THAT(metrics::accuracy(scores(), labels), WithinRel(2.0 / 6.0, 1e-15));
    REQUIRE_THAT(metrics::top_k_accuracy(scores(), labels, 1), WithinRel(2.0 / 6.0, 1e-15));
    REQUIRE_THAT(metrics::top_k_accuracy(scores(), labels, 2), WithinRel(5.0 / 6.0, 1e-15));
    REQUIRE(metrics::top_k_accuracy(scores(), labels, 3) == 1.0);

    // The same through a Tensor, and in float.
    REQUIRE_THAT(metrics::accuracy(TensorD::constant(scores()), labels),
                 WithinRel(2.0 / 6.0, 1e-15));
    const Matrix<float> as_float = scores().cast<float>();
    REQUIRE_THAT(metrics::top_k_accuracy(as_float, labels, 2), WithinRel(5.0 / 6.0, 1e-15));
}

TEST_CASE("the confusion matrix has the truth in rows and the prediction in columns", "[metrics]") {
    // true 0: predicted 0 once; true 1: predicted 0 twice; true 2: predicted 1, 2 and 0.
    metrics::ConfusionMatrix want(3, 3);
    want << 1, 0, 0, 2, 0, 0, 1, 1, 1;
    REQUIRE(metrics::confusion_matrix(scores(), labels) == want);
    REQUIRE(metrics::confusion_matrix(metrics::predictions(scores()), labels, 3) == want);
}

TEST_CASE("classification metrics take labels of another integer type as ints",
          "[metrics][labels]") {
    const std::vector<std::int64_t> wide(labels.begin(), labels.end());
    const std::vector<std::uint8_t> bytes(labels.begin(), labels.end());
    REQUIRE_THAT(metrics::accuracy(scores(), wide), WithinRel(2.0 / 6.0, 1e-15));
    REQUIRE_THAT(metrics::accuracy(TensorD::constant(scores()), bytes),
                 WithinRel(2.0 / 6.0, 1e-15));
    REQUIRE_THAT(metrics::top_k_accuracy(scores(), wide, 2), WithinRel(5.0 / 6.0, 1e-15));
    REQUIRE_THAT(metrics::top_k_accuracy(TensorD::constant(scores()), wide, 2),
                 WithinRel(5.0 / 6.0, 1e-15));
    CHECK(metrics::confusion_matrix(scores(), wide) == metrics::confusion_matrix(scores(), labels));
    CHECK(metrics::confusion_matrix(TensorD::constant(scores()), bytes) ==
          metrics::confusion_matrix(scores(), labels));

    std::vector<std::int64_t> too_large = wide;
    too_large[4] = std::int64_t{1} << 31;
    REQUIRE_THROWS_MATCHES(
        metrics::accuracy(scores(), too_large), value_error,
        MessageContains("metrics::accuracy: label 2147483648 at row 4 does not fit in an int"));
    REQUIRE_THROWS_MATCHES(metrics::top_k_accuracy(scores(), too_large, 1), value_error,
                           MessageContains("metrics::top_k_accuracy: label 2147483648 at row 4"));
    REQUIRE_THROWS_MATCHES(metrics::confusion_matrix(scores(), too_large), value_error,
                           MessageContains("metrics::confusion_matrix: label 2147483648 at row 4"));
    // Predictions and labels as PyTorch's argmax and targets give them.
    const std::vector<int> predicted = metrics::predictions(scores());
    const std::vector<std::int64_t> wide_predicted(predicted.begin(), predicted.end());
    CHECK(metrics::confusion_matrix(wide_predicted, wide, 3) ==
          metrics::confusion_matrix(predicted, labels, 3));
    CHECK(metrics::confusion_matrix(predicted, wide, 3) ==
          metrics::confusion_matrix(predicted, labels, 3));
    std::vector<std::int64_t> too_large_prediction = wide_predicted;
    too_large_prediction[1] = -(std::int64_t{1} << 40);
    REQUIRE_THROWS_MATCHES(
        metrics::confusion_matrix(too_large_prediction, labels, 3), value_error,
        MessageContains("metrics::confusion_matrix: prediction -1099511627776 at row 1 does not "
                        "fit in an int"));
    // In range, the int checks follow: a label outside the classes.
    std::vector<std::int64_t> outside = wide;
    outside[2] = 3;
    REQUIRE_THROWS_MATCHES(metrics::accuracy(scores(), outside), value_error,
                           MessageContains("label 3 at row 2 is outside the 3 classes"));
}

TEST_CASE("precision, recall and F1 per class and averaged, worked out by hand", "[metrics]") {
    const metrics::ClassificationReport r =
        metrics::classification_report(metrics::confusion_matrix(scores(), labels));
    // Column sums (predicted) 4, 1, 1; row sums (support) 1, 2, 3; diagonal 1, 0, 1.
    REQUIRE(r.support == std::vector<std::int64_t>{1, 2, 3});
    REQUIRE(r.predicted == std::vector<std::int64_t>{4, 1, 1});
    REQUIRE(r.precision == std::vector<double>{0.25, 0.0, 1.0});
    REQUIRE_THAT(r.recall[0], WithinRel(1.0, 1e-15));
    REQUIRE(r.recall[1] == 0.0);
    REQUIRE_THAT(r.recall[2], WithinRel(1.0 / 3.0, 1e-15));
    // F1 = 2 tp / (predicted + support): 2/5, 0/3, 2/4.
    REQUIRE_THAT(r.f1[0], WithinRel(0.4, 1e-15));
    REQUIRE(r.f1[1] == 0.0);
    REQUIRE_THAT(r.f1[2], WithinRel(0.5, 1e-15));
    REQUIRE_THAT(r.accuracy, WithinRel(2.0 / 6.0, 1e-15));
    REQUIRE_THAT(r.macro_precision, WithinRel(1.25 / 3.0, 1e-15));
    REQUIRE_THAT(r.macro_recall, WithinRel(4.0 / 9.0, 1e-15));
    REQUIRE_THAT(r.macro_f1, WithinRel(0.9 / 3.0, 1e-15));
    REQUIRE_THAT(r.weighted_precision, WithinRel(3.25 / 6.0, 1e-15));
    REQUIRE_THAT(r.weighted_recall, WithinRel(2.0 / 6.0, 1e-15));  // always the accuracy
    REQUIRE_THAT(r.weighted_f1, WithinRel(1.9 / 6.0, 1e-15));
}

TEST_CASE("a report from scores and labels prints as scikit-learn prints it", "[metrics]") {
    // From scikit-learn 1.2.1: classification_report([0, 2, 1, 2, 1, 2], [0, 1, 0, 2, 0, 0],
    // zero_division=0), the labels and the predictions of scores() above.
    const std::string sklearn =
        "              precision    recall  f1-score   support\n"
        "\n"
        "           0       0.25      1.00      0.40         1\n"
        "           1       0.00      0.00      0.00         2\n"
        "           2       1.00      0.33      0.50         3\n"
        "\n"
        "    accuracy                           0.33         6\n"
        "   macro avg       0.42      0.44      0.30         6\n"
        "weighted avg       0.54      0.33      0.32         6\n";
    const metrics::ClassificationReport from_scores =
        metrics::classification_report(scores(), labels);
    CHECK(metrics::format_report(from_scores) == sklearn);
    std::ostringstream printed;
    printed << from_scores;
    CHECK(printed.str() == sklearn);
    // The same report through a Tensor and int64 labels.
    const std::vector<std::int64_t> wide(labels.begin(), labels.end());
    CHECK(metrics::format_report(
              metrics::classification_report(TensorD::constant(scores()), wide)) == sklearn);

    // ... digits=4, target_names=["T-shirt/top", "coat", "bag"].
    const std::string named =
        "              precision    recall  f1-score   support\n"
        "\n"
        " T-shirt/top     0.2500    1.0000    0.4000         1\n"
        "        coat     0.0000    0.0000    0.0000         2\n"
        "         bag     1.0000    0.3333    0.5000         3\n"
        "\n"
        "    accuracy                         0.3333         6\n"
        "   macro avg     0.4167    0.4444    0.3000         6\n"
        "weighted avg     0.5417    0.3333    0.3167         6\n";
    CHECK(metrics::format_report(
              from_scores, {.class_names = {"T-shirt/top", "coat", "bag"}, .digits = 4}) == named);
    const std::string long_name =
        metrics::format_report(from_scores, {.class_names = {"a", "b", "a rather long class"}});
    CHECK(long_name.find("\na rather long class       1.00      0.33      0.50         3\n") !=
          std::string::npos);
    CHECK(long_name.find("\n       weighted avg       0.54") != std::string::npos);

    REQUIRE_THROWS_MATCHES(metrics::format_report(from_scores, {.class_names = {"a", "b"}}),
                           value_error,
                           MessageContains("metrics::format_report: 2 class names for 3 classes"));
    REQUIRE_THROWS_MATCHES(metrics::format_report(from_scores, {.digits = -1}), value_error,
                           MessageContains("digits must be >= 0, got -1"));
    metrics::ClassificationReport uneven = from_scores;
    uneven.f1.pop_back();
    REQUIRE_THROWS_MATCHES(metrics::format_report(uneven), value_error,
                           MessageContains("per-class lists differ in length"));
    REQUIRE_THROWS_MATCHES(metrics::format_report(metrics::ClassificationReport{}), value_error,
                           MessageContains("the report has no classes"));
}

TEST_CASE("a report's numbers are scikit-learn's to the last bit, and so is its text",
          "[metrics]") {
    // Each expected text is scikit-learn 1.2.1's classification_report(y_true, y_pred,
    // labels=range(classes), zero_division=0, ...) for the same y_true and y_pred.
    const auto report_of = [](const std::vector<int>& truth, const std::vector<int>& predicted,
                              Index classes) {
        return metrics::classification_report(metrics::confusion_matrix(predicted, truth, classes));
    };

    // 79 samples of class 0, one predicted right, and one of class 1: F1 is 2 p r / (p + r),
    // which here rounds to 0.02 where 2 tp / (2 tp + fp + fn) = 0.025 would print 0.03; the
    // accuracy row prints the micro F1 (0.03). Names are measured in characters, not bytes.
    std::vector<int> truth(79, 0), predicted(79, 1);
    truth.push_back(1);
    predicted.push_back(1);
    predicted[0] = 0;
    CHECK(metrics::format_report(report_of(truth, predicted, 2),
                                 {.class_names = {"Schn\u00fcrstiefel", "Sandale"}}) ==
          "               precision    recall  f1-score   support\n"
          "\n"
          "Schn\u00fcrstiefel       1.00      0.01      0.02        79\n"
          "      Sandale       0.01      1.00      0.02         1\n"
          "\n"
          "     accuracy                           0.03        80\n"
          "    macro avg       0.51      0.51      0.02        80\n"
          " weighted avg       0.99      0.03      0.02        80\n");

    // Ten classes at 17 digits: every double, including the means numpy sums pairwise.
    const std::vector<int> truth10 = {9, 6, 6, 8, 5, 7, 8, 2, 0, 3, 2, 8, 9, 0, 4, 8, 1, 7, 1, 4,
                                      8, 3, 3, 2, 7, 2, 9, 4, 4, 5, 5, 5, 5, 9, 8, 7, 7, 6, 3, 9,
                                      4, 2, 8, 1, 8, 6, 1, 0, 4, 0, 1, 5, 9, 4, 8, 9, 8, 6, 4, 5};
    const std::vector<int> predicted10 = {
        9, 6, 6, 8, 5, 7, 8, 2, 4, 3, 2, 7, 9, 0, 7, 3, 1, 7, 1, 1, 8, 3, 3, 2, 7, 2, 0, 4, 4, 5,
        6, 3, 0, 9, 8, 7, 7, 6, 9, 9, 5, 2, 7, 9, 8, 1, 4, 9, 4, 0, 1, 7, 9, 4, 6, 1, 8, 6, 4, 5};
    CHECK(
        metrics::format_report(report_of(truth10, predicted10, 10), {.digits = 17}) ==
        "                   precision    recall  f1-score   support\n"
        "\n"
        "                0  0.50000000000000000 0.50000000000000000 0.50000000000000000         4\n"
        "                1  0.50000000000000000 0.59999999999999998 0.54545454545454541         5\n"
        "                2  1.00000000000000000 1.00000000000000000 1.00000000000000000         5\n"
        "                3  0.59999999999999998 0.75000000000000000 0.66666666666666652         4\n"
        "                4  0.71428571428571430 0.62500000000000000 0.66666666666666663         8\n"
        "                5  0.75000000000000000 0.42857142857142855 0.54545454545454541         7\n"
        "                6  0.66666666666666663 0.80000000000000004 0.72727272727272718         5\n"
        "                7  0.55555555555555558 1.00000000000000000 0.71428571428571430         5\n"
        "                8  1.00000000000000000 0.59999999999999998 0.74999999999999989        10\n"
        "                9  0.62500000000000000 0.71428571428571430 0.66666666666666663         7\n"
        "\n"
        "         accuracy                      0.68333333333333335        60\n"
        "        macro avg  0.69115079365079368 0.70178571428571435 0.67824675324675332        60\n"
        "     weighted avg  0.72250661375661385 0.68333333333333335 0.68199855699855694        60\n");

    // Classes 2 and 3 neither in the truth nor predicted: scikit-learn prints "micro avg".
    CHECK(metrics::format_report(report_of({0, 1, 1, 0}, {0, 1, 1, 1}, 4)) ==
          "              precision    recall  f1-score   support\n"
          "\n"
          "           0       1.00      0.50      0.67         2\n"
          "           1       0.67      1.00      0.80         2\n"
          "           2       0.00      0.00      0.00         0\n"
          "           3       0.00      0.00      0.00         0\n"
          "\n"
          "   micro avg       0.75      0.75      0.75         4\n"
          "   macro avg       0.42      0.38      0.37         4\n"
          "weighted avg       0.83      0.75      0.73         4\n");
}

TEST_CASE("a class never predicted or never seen scores 0, as scikit-learn's zero_division=0",
          "[metrics]") {
    // Four classes: class 3 appears nowhere, so precision, recall and F1 are 0/0 -> 0 and it
    // still counts in the macro average; class 1 is predicted once but never right.
    const metrics::ClassificationReport r = metrics::classification_report(
        metrics::confusion_matrix(metrics::predictions(scores()), labels, 4));
    REQUIRE(r.precision[3] == 0.0);
    REQUIRE(r.recall[3] == 0.0);
    REQUIRE(r.f1[3] == 0.0);
    REQUIRE(r.support[3] == 0);
    REQUIRE_THAT(r.macro_precision, WithinRel(1.25 / 4.0, 1e-15));
    REQUIRE_THAT(r.macro_f1, WithinRel(0.9 / 4.0, 1e-15));

    // A class with samples that is never predicted: precision 0/0 -> 0.
    metrics::ConfusionMatrix never(2, 2);
    never << 3, 0, 2, 0;
    const metrics::ClassificationReport n = metrics::classification_report(never);
    REQUIRE(n.precision[1] == 0.0);
    REQUIRE(n.recall[1] == 0.0);
    REQUIRE_THAT(n.precision[0], WithinRel(0.6, 1e-15));
    REQUIRE_THAT(n.f1[0], WithinRel(0.75, 1e-15));  // 6 / (5 + 3)
}

TEST_CASE("classification metrics name the shapes and the label that is wrong", "[metrics]") {
    const std::vector<int> short_labels = {0, 1};
    REQUIRE_THROWS_MATCHES(metrics::accuracy(scores(), short_labels), shape_error,
                           MessageContains("metrics::accuracy: 2 labels for scores [6x3]"));
    const std::vector<int> bad = {0, 2, 3, 2, 1, 2};
    REQUIRE_THROWS_MATCHES(
        metrics::top_k_accuracy(scores(), bad, 1), value_error,
        MessageContains(
            "metrics::top_k_accuracy: label 3 at row 2 is outside the 3 classes [0, 3)"));
    const std::vector<int> negative = {0, 2, 1, 2, -1, 2};
    REQUIRE_THROWS_MATCHES(metrics::confusion_matrix(scores(), negative), value_error,
                           MessageContains("label -1 at row 4"));
    REQUIRE_THROWS_MATCHES(metrics::top_k_accuracy(scores(), labels, 4), value_error,
                           MessageContains("k must be in [1, 3] (the number of classes), got 4"));
    REQUIRE_THROWS_MATCHES(metrics::top_k_accuracy(scores(), labels, 0), value_error,
                           MessageContains("got 0"));
    REQUIRE_THROWS_MATCHES(metrics::accuracy(Matrix<double>(0, 3), std::vector<int>{}), value_error,
                           MessageContains("no samples"));
    const std::vector<int> predicted = {0, 1, 5};
    const std::vector<int> three = {0, 1, 1};
    REQUIRE_THROWS_MATCHES(metrics::confusion_matrix(predicted, three, 3), value_error,
                           MessageContains("prediction 5 at row 2 is outside the 3 classes"));
    REQUIRE_THROWS_MATCHES(metrics::confusion_matrix(predicted, labels, 3), shape_error,
                           MessageContains("3 predictions but 6 labels"));
    REQUIRE_THROWS_MATCHES(metrics::classification_report(metrics::ConfusionMatrix::Zero(2, 3)),
                           shape_error, MessageContains("must be square"));
    REQUIRE_THROWS_MATCHES(metrics::classification_report(metrics::ConfusionMatrix::Zero(2, 2)),
                           value_error, MessageContains("counts no samples"));
}

TEST_CASE("MSE, MAE and R2 on a case worked out by hand", "[metrics]") {
    // Residuals -0.5, 0, 1, -1: MSE 2.25 / 4, MAE 2.5 / 4. Target mean 2.625, so
    // SS_tot = 1.125² + 0.625² + 0.625² + 2.375² = 7.6875 and R² = 1 - 2.25 / 7.6875 = 29/41.
    Matrix<double> predicted(4, 1), target(4, 1);
    predicted << 1, 2, 3, 4;
    target << 1.5, 2, 2, 5;
    REQUIRE_THAT(metrics::mean_squared_error(predicted, target), WithinRel(0.5625, 1e-15));
    REQUIRE_THAT(metrics::mean_absolute_error(predicted, target), WithinRel(0.625, 1e-15));
    REQUIRE_THAT(metrics::r2_score(predicted, target), WithinRel(29.0 / 41.0, 1e-15));
    REQUIRE(metrics::r2_score(target, target) == 1.0);

    // A second output with a constant target: R² is 0 when wrong (not -infinity) and 1 when
    // exact; every metric averages the two outputs with equal weights.
    Matrix<double> p2(4, 2), t2(4, 2);
    p2 << predicted, Matrix<double>::Zero(4, 1);
    t2 << target, Matrix<double>::Ones(4, 1);
    REQUIRE_THAT(metrics::mean_squared_error(p2, t2), WithinRel((0.5625 + 1.0) / 2.0, 1e-15));
    REQUIRE_THAT(metrics::mean_absolute_error(p2, t2), WithinRel((0.625 + 1.0) / 2.0, 1e-15));
    REQUIRE_THAT(metrics::r2_score(p2, t2), WithinRel(29.0 / 82.0, 1e-15));
    p2.col(1).setOnes();
    REQUIRE_THAT(metrics::r2_score(p2, t2), WithinRel((29.0 / 41.0 + 1.0) / 2.0, 1e-15));

    // Tensors, in float: the metric is still accumulated in double.
    const TensorF pf = TensorF::constant(predicted.cast<float>());
    const TensorF tf = TensorF::constant(target.cast<float>());
    REQUIRE_THAT(metrics::mean_squared_error(pf, tf), WithinRel(0.5625, 1e-15));
    REQUIRE_THAT(metrics::r2_score(pf, tf), WithinRel(29.0 / 41.0, 1e-15));
}

TEST_CASE("regression metrics name both shapes when they differ", "[metrics]") {
    REQUIRE_THROWS_MATCHES(
        metrics::mean_squared_error(Matrix<double>::Zero(4, 1), Matrix<double>::Zero(4, 2)),
        shape_error,
        MessageContains("metrics::mean_squared_error: predictions [4x1] and targets [4x2] differ"));
    REQUIRE_THROWS_MATCHES(
        metrics::r2_score(Matrix<double>::Zero(3, 1), Matrix<double>::Zero(2, 1)), shape_error,
        MessageContains({"metrics::r2_score", "[3x1]", "[2x1]"}));
    REQUIRE_THROWS_MATCHES(metrics::mean_absolute_error(Matrix<double>(0, 1), Matrix<double>(0, 1)),
                           value_error, MessageContains("nothing to score"));
}
