// gradscope-tabular: trains an MLP on a CSV table, the way one trains scikit-learn's
// MLPClassifier or MLPRegressor, with the pieces a training program is made of:
//   data::read_tabular_csv   the numeric feature columns and a target column (class names or
//                            numbers) of a CSV file with a header row;
//   data::split              seeded train / validation / test rows, stratified by class on
//                            request;
//   data::StandardScaler     (or MinMaxScaler) fitted on the training rows only, and, for
//                            regression, the target standardised the same way;
//   data::DataLoader         shuffled mini-batches;
//   weight_decay_groups      Adam's L2 penalty on the weights, not on biases or norm parameters;
//   LR schedulers            constant, cosine annealing, or reduce-on-plateau;
//   EarlyStopping            on the validation loss, keeping the best epoch's checkpoint;
//   metrics                  accuracy, per-class precision / recall / F1 and the confusion
//                            matrix; or R², MAE and MSE in the target's own units.
//
//   gradscope-tabular wine.csv --target class --stratify --checkpoint wine.safetensors
//   gradscope-tabular diabetes.csv --target progression --task regress --report run.json
//   gradscope-tabular wine.csv --evaluate wine.safetensors   # no training
//
// The checkpoint holds the network, both scalers and the settings that built the network, so
// --evaluate rebuilds the same model from the file alone and scores the test rows of the same
// split (same file, fractions and seed).
#include <gradscope/builtin_activations.hpp>
#include <gradscope/gradscope.hpp>
#include <gradscope/io.hpp>

#include "cli_checks.hpp"
#include "progress_bar.hpp"
#include "text_file.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

using namespace gradscope;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    std::string file;
    std::string target;
    std::string task = "classify";  // or "regress"
    std::vector<Index> hidden = {64, 64};
    std::string activation = "relu";
    std::string norm = "none";
    double dropout = 0.0;
    std::string optimizer = "adam";
    double lr = 1e-3;
    double weight_decay = 1e-4;
    std::string schedule = "constant";
    int epochs = 200;
    Index batch = 32;
    double validation = 0.15;
    double test = 0.15;
    std::uint64_t seed = 1;
    bool stratify = false;
    std::string scaler = "standard";
    int patience = 20;
    double min_delta = 1e-4;
    std::string checkpoint;
    std::string report;
    std::string evaluate;
    bool no_progress = false;
    bool quiet = false;

    [[nodiscard]] bool classify() const { return task == "classify"; }
};

// What the checkpoint must record to rebuild the model and its split.
json model_config(const Settings& s) {
    return {{"target", s.target},     {"task", s.task},      {"hidden", s.hidden},
            {"activation", s.activation}, {"norm", s.norm},  {"dropout", s.dropout},
            {"validation", s.validation}, {"test", s.test},  {"seed", s.seed},
            {"stratify", s.stratify}};
}

constexpr const char* kConfigKey = "tabular.config";

// --evaluate takes the model and its split from the checkpoint. An option given on the command
// line that says otherwise is refused: overriding it silently would score another model than the
// one asked for.
void apply_model_config(Settings& s, const std::string& text, const std::string& source,
                        const CLI::App& app) {
    try {
        const json saved = json::parse(text);
        const json command_line = model_config(s);
        for (const auto& [key, given] : command_line.items()) {
            const json& value = saved.at(key);
            if (app.count("--" + key) > 0 && value != given) {
                throw value_error("--" + key + " " + given.dump() + ": " + source +
                                  " holds a model trained with " + value.dump() +
                                  " (--evaluate takes the model and its split from the file; "
                                  "leave the option out)");
            }
        }
        s.target = saved.at("target").get<std::string>();
        s.task = saved.at("task").get<std::string>();
        s.hidden = saved.at("hidden").get<std::vector<Index>>();
        s.activation = saved.at("activation").get<std::string>();
        s.norm = saved.at("norm").get<std::string>();
        s.dropout = saved.at("dropout").get<double>();
        s.validation = saved.at("validation").get<double>();
        s.test = saved.at("test").get<double>();
        s.seed = saved.at("seed").get<std::uint64_t>();
        s.stratify = saved.at("stratify").get<bool>();
    } catch (const json::exception& e) {
        throw io_error(source + ": metadata '" + kConfigKey + "' is not this tool's: " + e.what());
    }
}

// ---------------------------------------------------------------------------------------------
// Data: the split, scaled with statistics of the training rows only

// The feature scaler --scaler names; "none" leaves the features as they are.
class FeatureScaling {
public:
    explicit FeatureScaling(std::string kind) : kind_(std::move(kind)) {}

    void fit(const Matrix<float>& x) {
        if (kind_ == "standard") standard_.fit(x);
        if (kind_ == "minmax") minmax_.fit(x);
    }
    [[nodiscard]] Matrix<float> transform(const Matrix<float>& x) const {
        if (kind_ == "standard") return standard_.transform(x);
        if (kind_ == "minmax") return minmax_.transform(x);
        return x;
    }
    [[nodiscard]] std::map<std::string, std::string> metadata() const {
        if (kind_ == "standard") return standard_.metadata();
        if (kind_ == "minmax") return minmax_.metadata();
        return {};
    }
    // The scaler a checkpoint saved (none when it has no "scaler.kind").
    static FeatureScaling from_metadata(const std::map<std::string, std::string>& metadata) {
        const auto kind = metadata.find("scaler.kind");
        if (kind == metadata.end()) return FeatureScaling("none");
        if (kind->second == "MinMaxScaler") {
            FeatureScaling out("minmax");
            out.minmax_ = data::MinMaxScaler<float>::from_metadata(metadata);
            return out;
        }
        FeatureScaling out("standard");
        out.standard_ = data::StandardScaler<float>::from_metadata(metadata);
        return out;
    }

private:
    std::string kind_;
    data::StandardScaler<float> standard_;
    data::MinMaxScaler<float> minmax_;
};

struct Prepared {
    data::Tabular<float> table;
    data::SplitIndices rows;
    // Scaled features; targets standardised (regression) or class labels.
    std::shared_ptr<const data::TensorDataset<float>> train, validation, test;
    FeatureScaling features{"none"};
    std::optional<data::StandardScaler<float>> target_scaler;  // regression only
};

data::TensorDataset<float> scaled_part(const data::TensorDataset<float>& part,
                                       const Prepared& p) {
    Matrix<float> x = p.features.transform(part.features());
    if (part.has_labels()) return {std::move(x), part.labels()};
    return {std::move(x), p.target_scaler->transform(part.targets())};
}

// Reads the file and splits it; fits the scalers on the training rows unless `saved` (a
// checkpoint's metadata) provides them.
Prepared prepare(const Settings& s, const std::map<std::string, std::string>* saved) {
    Prepared p;
    try {
        p.table = data::read_tabular_csv<float>(
            s.file, {.target = s.target,
                     .target_kind = s.classify() ? data::Target::classes : data::Target::values});
    } catch (const value_error& e) {
        // The library's advice names its C++ option; this program's is --task regress.
        const std::string what = e.what();
        const auto advice = what.find("; to read the column as a number to predict");
        if (advice == std::string::npos) throw;
        throw value_error(what.substr(0, advice) +
                          "; to predict it as a number, add --task regress");
    }
    const data::TensorDataset<float> all = p.table.dataset();
    const data::SplitOptions split{
        .validation = s.validation, .test = s.test, .seed = s.seed, .stratify = s.stratify};
    p.rows = s.stratify ? data::split_indices(p.table.labels, split)
                        : data::split_indices(all.size(), split);
    const auto train = data::subset(all, p.rows.train);
    if (saved != nullptr) {
        p.features = FeatureScaling::from_metadata(*saved);
        if (!s.classify())
            p.target_scaler = data::StandardScaler<float>::from_metadata(*saved, "target_scaler.");
    } else {
        p.features = FeatureScaling(s.scaler);
        p.features.fit(train.features());
        if (!s.classify()) p.target_scaler = data::StandardScaler<float>().fit(train.targets());
    }
    const auto part = [&](const std::vector<std::size_t>& rows) {
        return std::make_shared<const data::TensorDataset<float>>(
            scaled_part(data::subset(all, rows), p));
    };
    p.train = part(p.rows.train);
    p.validation = part(p.rows.validation);
    p.test = part(p.rows.test);
    return p;
}

// ---------------------------------------------------------------------------------------------
// The model

Index output_width(const Settings& s, const Prepared& p) {
    return s.classify() ? static_cast<Index>(p.table.class_names.size()) : 1;
}

std::shared_ptr<MLP<float>> make_network(const Settings& s, Index inputs, Index outputs) {
    std::vector<Index> widths{inputs};
    widths.insert(widths.end(), s.hidden.begin(), s.hidden.end());
    widths.push_back(outputs);
    ActivationChoice<float> act = ReLU{};
    for_each_builtin_activation([&](auto a) {
        if (s.activation == decltype(a)::name) act = a;
    });
    return mlp<float>({.widths = widths,
                       .activation = act,
                       .norm = s.norm == "batch"   ? Normalization::batch
                               : s.norm == "layer" ? Normalization::layer
                                                   : Normalization::none,
                       .dropout = s.dropout,
                       .seed = s.seed});
}

std::unique_ptr<Optimizer<float>> make_optimizer(const Settings& s, const MLP<float>& net) {
    auto groups = weight_decay_groups(net);  // no decay on biases and norm parameters
    if (s.optimizer == "sgd") {
        return std::make_unique<SGD<float>>(
            std::move(groups), SGDOptions{.lr = s.lr, .momentum = 0.9, .weight_decay = s.weight_decay});
    }
    if (s.optimizer == "adamw") {
        return std::make_unique<AdamW<float>>(
            std::move(groups), AdamWOptions{.lr = s.lr, .weight_decay = s.weight_decay});
    }
    return std::make_unique<Adam<float>>(std::move(groups),
                                         AdamOptions{.lr = s.lr, .weight_decay = s.weight_decay});
}

Tensor<float> loss_of(const Tensor<float>& out, const data::Batch<float>& batch) {
    if (!batch.labels.empty()) return cross_entropy(out, batch.labels);
    return mse_loss(out, Tensor<float>::constant(batch.y));
}

// ---------------------------------------------------------------------------------------------
// Evaluation, in eval mode and without a graph

struct Scores {
    double loss = 0.0;  // on the scale the network is trained on
    // Classification.
    double accuracy = 0.0;
    std::optional<metrics::ClassificationReport> report;
    metrics::ConfusionMatrix confusion;
    // Regression, in the target's own units.
    double r2 = 0.0, mae = 0.0, mse = 0.0;
};

Scores score(MLP<float>& net, const data::TensorDataset<float>& part, const Prepared& p) {
    net.eval();
    NoGradGuard no_grad;
    Scores out;
    const Tensor<float> prediction = net(Tensor<float>::constant(part.features()));
    if (part.has_labels()) {
        out.loss = cross_entropy(prediction, part.labels()).item();
        out.confusion = metrics::confusion_matrix(prediction, part.labels());
        out.report = metrics::classification_report(out.confusion);
        out.accuracy = out.report->accuracy;
    } else {
        out.loss = mse_loss(prediction, Tensor<float>::constant(part.targets())).item();
        const Matrix<float> predicted = p.target_scaler->inverse_transform(prediction.value());
        const Matrix<float> actual = p.target_scaler->inverse_transform(part.targets());
        out.r2 = metrics::r2_score(predicted, actual);
        out.mae = metrics::mean_absolute_error(predicted, actual);
        out.mse = metrics::mean_squared_error(predicted, actual);
    }
    net.train();
    return out;
}

// "accuracy 97.78%" or "R² 0.4812": the headline metric.
std::string headline(const Scores& sc, bool classify) {
    std::array<char, 64> text{};
    if (classify) {
        std::snprintf(text.data(), text.size(), "accuracy %.2f%%", 100.0 * sc.accuracy);
    } else {
        std::snprintf(text.data(), text.size(), "R² %.4f", sc.r2);
    }
    return text.data();
}

json to_json(const Scores& sc, bool classify) {
    if (classify) {
        return {{"loss", sc.loss},
                {"accuracy", sc.accuracy},
                {"macro_f1", sc.report->macro_f1},
                {"precision", sc.report->precision},
                {"recall", sc.report->recall},
                {"f1", sc.report->f1}};
    }
    return {{"loss", sc.loss}, {"r2", sc.r2}, {"mae", sc.mae}, {"mse", sc.mse}};
}

// ---------------------------------------------------------------------------------------------
// Training

struct EpochRecord {
    int epoch = 0;
    double train_loss = 0.0;
    double validation_loss = 0.0;
    double validation_metric = 0.0;  // accuracy or R²
    double lr = 0.0;
};

struct Run {
    std::vector<EpochRecord> epochs;
    std::int64_t best_epoch = 0;
    double train_seconds = 0.0;
};

// The schedule --schedule names, stepped once per epoch (plateau: on the validation loss).
struct Schedule {
    std::unique_ptr<LRScheduler> per_epoch;
    std::unique_ptr<ReduceLROnPlateau> plateau;

    Schedule(const Settings& s, Optimizer<float>& optimizer) {
        if (s.schedule == "cosine") {
            per_epoch = std::make_unique<CosineAnnealingLR>(optimizer, CosineAnnealingLROptions{.T_max = s.epochs});
        } else if (s.schedule == "plateau") {
            plateau = std::make_unique<ReduceLROnPlateau>(
                optimizer, ReduceLROnPlateauOptions{.factor = 0.5, .patience = std::max(1, s.patience / 4)});
        }
    }
    void step(double validation_loss) {
        if (per_epoch) per_epoch->step();
        if (plateau) plateau->step(validation_loss);
    }
};

Run train(const Settings& s, MLP<float>& net, const Prepared& p,
          const std::map<std::string, std::string>& checkpoint_metadata) {
    auto optimizer = make_optimizer(s, net);
    Schedule schedule(s, *optimizer);
    // Batch norm cannot train on a batch of one (PyTorch refuses too): drop such a last batch.
    const bool drop_last = s.norm == "batch" && p.train->size() % static_cast<std::size_t>(s.batch) == 1;
    data::DataLoader<float> loader(p.train, {.batch_size = static_cast<std::size_t>(s.batch),
                                             .shuffle = true,
                                             .drop_last = drop_last,
                                             .seed = s.seed});
    // An epoch here takes a millisecond or less: the checkpoint is written once, at the end,
    // rather than on each new best.
    EarlyStopping<float> stopper(net, {.patience = s.patience,
                                       .min_delta = s.min_delta,
                                       .checkpoint = s.checkpoint,
                                       .write_every_best = false,
                                       .metadata = checkpoint_metadata});
    ProgressBar bar(!s.quiet && !s.no_progress && stdout_is_terminal());
    Run run;
    const auto start = Clock::now();
    for (int epoch = 1; epoch <= s.epochs; ++epoch) {
        double loss_sum = 0.0;
        std::size_t seen = 0;
        for (const data::Batch<float>& batch : loader) {
            const Tensor<float> out = net(Tensor<float>::constant(batch.x));
            Tensor<float> loss = loss_of(out, batch);
            optimizer->zero_grad();
            loss.backward();
            optimizer->step();
            loss_sum += static_cast<double>(loss.item()) * static_cast<double>(batch.size());
            seen += static_cast<std::size_t>(batch.size());
        }
        const Scores validation = score(net, *p.validation, p);
        EpochRecord record{.epoch = epoch,
                           .train_loss = loss_sum / static_cast<double>(std::max<std::size_t>(seen, 1)),
                           .validation_loss = validation.loss,
                           .validation_metric = s.classify() ? validation.accuracy : validation.r2,
                           .lr = optimizer->lr()};
        run.epochs.push_back(record);
        schedule.step(validation.loss);
        const bool stop = stopper.step(validation.loss);
        std::array<char, 160> after{};
        std::snprintf(after.data(), after.size(),
                      "train loss %.4f  validation loss %.4f  %s  best epoch %lld",
                      record.train_loss, record.validation_loss,
                      headline(validation, s.classify()).c_str(),
                      static_cast<long long>(stopper.best_epoch().value_or(0)));
        bar.draw("epoch " + std::to_string(epoch) + "/" + std::to_string(s.epochs), epoch,
                 s.epochs, after.data(), stop || epoch == s.epochs);
        if (stop) break;
    }
    bar.clear();
    stopper.restore_best();
    if (!s.checkpoint.empty()) stopper.save_best();
    run.train_seconds = seconds_since(start);
    run.best_epoch = stopper.best_epoch().value_or(0);
    return run;
}

// ---------------------------------------------------------------------------------------------
// Output

void print_scores(const Settings& s, const Prepared& p, const char* part, const Scores& sc) {
    if (!s.classify()) {
        std::printf("%s: R² %.4f, MAE %.4g, MSE %.4g (in the units of '%s')\n", part, sc.r2,
                    sc.mae, sc.mse, s.target.c_str());
        return;
    }
    std::printf("%s: accuracy %.2f%%, macro F1 %.4f\n", part, 100.0 * sc.accuracy,
                sc.report->macro_f1);
    // The per-class table as scikit-learn's classification_report prints it, then the confusion.
    const std::string table =
        metrics::format_report(*sc.report, {.class_names = p.table.class_names, .digits = 4});
    std::printf("%s", table.c_str());
    std::printf("confusion (rows: true class, columns: predicted, in the order above)\n");
    for (Index c = 0; c < sc.confusion.rows(); ++c) {
        std::printf("  %-16s", p.table.class_names[static_cast<std::size_t>(c)].c_str());
        for (Index k = 0; k < sc.confusion.cols(); ++k)
            std::printf(" %4lld", static_cast<long long>(sc.confusion(c, k)));
        std::printf("\n");
    }
}

json report(const Settings& s, const Prepared& p, const Run& run, const Scores& validation,
            const Scores& test) {
    json history = json::array();
    for (const auto& e : run.epochs) {
        history.push_back({{"epoch", e.epoch},
                           {"train_loss", e.train_loss},
                           {"validation_loss", e.validation_loss},
                           {"validation_metric", e.validation_metric},
                           {"lr", e.lr}});
    }
    json out = {{"file", s.file},
                {"target", s.target},
                {"task", s.classify() ? "classification" : "regression"},
                {"rows", p.table.features.rows()},
                {"features", p.table.features.cols()},
                {"feature_names", p.table.feature_names},
                {"hidden", s.hidden},
                {"activation", s.activation},
                {"optimizer", s.optimizer},
                {"lr", s.lr},
                {"weight_decay", s.weight_decay},
                {"schedule", s.schedule},
                {"batch", s.batch},
                {"scaler", s.scaler},
                {"seed", s.seed},
                {"epochs_run", run.epochs.size()},
                {"best_epoch", run.best_epoch},
                {"train_seconds", run.train_seconds},
                {"split",
                 {{"train", p.rows.train}, {"validation", p.rows.validation}, {"test", p.rows.test}}},
                {"validation", to_json(validation, s.classify())},
                {"test", to_json(test, s.classify())},
                {"history", history}};
    if (s.classify()) {
        out["classes"] = p.table.class_names;
        json confusion = json::array();
        for (Index r = 0; r < test.confusion.rows(); ++r) {
            json row = json::array();
            for (Index c = 0; c < test.confusion.cols(); ++c) row.push_back(test.confusion(r, c));
            confusion.push_back(row);
        }
        out["test"]["confusion"] = confusion;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Command line

void add_options(CLI::App& app, Settings& s) {
    app.add_option("file", s.file, "CSV file with a header row")->required()->check(CLI::ExistingFile);
    app.add_option("--target", s.target,
                   "The target column's name (with --evaluate, the checkpoint's unless given)");
    app.add_option("--task", s.task, "classify: the target's distinct values are classes; regress: it is a number")
        ->check(CLI::IsMember({"classify", "regress"}))
        ->capture_default_str();
    app.add_option("--hidden", s.hidden, "Hidden layer widths, comma separated")
        ->delimiter(',')
        ->check(CLI::Range(Index{1}, Index{1} << 16))
        ->capture_default_str();
    app.add_option("--activation", s.activation, "Activation")
        ->check(CLI::IsMember(builtin_activation_names()))
        ->capture_default_str();
    app.add_option("--norm", s.norm, "Normalisation in every hidden layer")
        ->check(CLI::IsMember({"none", "batch", "layer"}))
        ->capture_default_str();
    app.add_option("--dropout", s.dropout, "Dropout probability after each hidden activation")
        ->check(finite_number)
        ->check(CLI::Range(0.0, 0.99))
        ->capture_default_str();
    app.add_option("--optimizer", s.optimizer, "Optimiser (sgd has momentum 0.9)")
        ->check(CLI::IsMember({"adam", "adamw", "sgd"}))
        ->capture_default_str();
    app.add_option("--lr", s.lr, "Learning rate")
        ->check(finite_number)
        ->check(positive_number)
        ->capture_default_str();
    app.add_option("--weight-decay", s.weight_decay,
                   "Weight decay on the weights only (Adam, SGD: an L2 term in the gradient; AdamW: decoupled)")
        ->check(finite_number)
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_option("--schedule", s.schedule,
                   "Learning rate per epoch: constant; cosine (CosineAnnealingLR over --epochs); plateau "
                   "(ReduceLROnPlateau on the validation loss, factor 0.5, patience --patience / 4)")
        ->check(CLI::IsMember({"constant", "cosine", "plateau"}))
        ->capture_default_str();
    app.add_option("--epochs", s.epochs, "Most epochs to train")->check(CLI::Range(1, 1000000))->capture_default_str();
    app.add_option("--batch", s.batch, "Batch size")->check(CLI::Range(Index{1}, Index{1} << 24))->capture_default_str();
    app.add_option("--validation", s.validation, "Fraction of the rows for validation (early stopping)")
        ->check(finite_number)
        ->check(CLI::Range(0.0, 0.9))
        ->capture_default_str();
    app.add_option("--test", s.test, "Fraction of the rows held out for the final test")
        ->check(finite_number)
        ->check(CLI::Range(0.0, 0.9))
        ->capture_default_str();
    app.add_option("--seed", s.seed, "Seed of the split, the initial weights and the shuffling")->capture_default_str();
    app.add_flag("--stratify", s.stratify, "Split each class in the same proportions (classification)");
    app.add_option("--scaler", s.scaler, "Feature scaling fitted on the training rows")
        ->check(CLI::IsMember({"standard", "minmax", "none"}))
        ->capture_default_str();
    app.add_option("--patience", s.patience, "Stop after this many epochs without a lower validation loss")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--min-delta", s.min_delta,
                   "How much lower than the best a validation loss must be to count as better "
                   "(scikit-learn's tol plays this part for its training loss)")
        ->check(finite_number)
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_option("--checkpoint", s.checkpoint, "Where to keep the best epoch's model (safetensors)")
        ->check(output_file);
    app.add_option("--report", s.report, "Write the run as JSON here")
        ->check(output_file);
    app.add_option("--evaluate", s.evaluate,
                   "Score this checkpoint on the test rows instead of training (model, scalers and split from the file)")
        ->check(CLI::ExistingFile);
    app.add_flag("--no-progress", s.no_progress, "No progress bar (there is none when stdout is not a terminal)");
    app.add_flag("--quiet,-q", s.quiet, "Print nothing but errors");
}

void check_settings(const Settings& s) {
    if (s.target.empty() && s.evaluate.empty()) throw CLI::RequiredError("--target");
    if (s.validation <= 0.0 && s.evaluate.empty()) {
        throw CLI::ValidationError("--validation", "early stopping needs validation rows (> 0)");
    }
    if (s.test <= 0.0) {
        throw CLI::ValidationError("--test", "the tool reports on test rows: --test must be > 0");
    }
    if (s.validation + s.test >= 1.0) {
        throw CLI::ValidationError("--test", "--validation + --test must leave training rows");
    }
    if (s.stratify && !s.classify()) {
        throw CLI::ValidationError("--stratify", "stratifying needs classes (--task classify)");
    }
    if (s.norm == "batch" && s.batch < 2) {
        throw CLI::ValidationError("--batch", "batch norm needs batches of at least 2");
    }
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    CLI::App app{
        "gradscope-tabular: trains an MLP on a CSV file (split, scaling, mini-batches, early stopping on the "
        "validation loss) and reports accuracy and per-class F1, or R², on the held-out test rows"};
    add_options(app, s);
    try {
        app.parse(argc, argv);
        check_settings(s);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;  // --help is success; every usage error is 2
    }
    try {
        std::map<std::string, std::string> saved;
        const bool target_from_checkpoint = !s.evaluate.empty() && s.target.empty();
        if (!s.evaluate.empty()) {
            saved = read_checkpoint_metadata(s.evaluate);
            const auto config = saved.find(kConfigKey);
            if (config == saved.end()) {
                throw io_error(s.evaluate + ": no '" + kConfigKey +
                               "' metadata: not a checkpoint written by gradscope-tabular");
            }
            apply_model_config(s, config->second, s.evaluate, app);
        }
        const Prepared p = [&] {
            try {
                return prepare(s, s.evaluate.empty() ? nullptr : &saved);
            } catch (const value_error& e) {
                // A column the user never named: say where its name came from.
                const std::string what = e.what();
                if (!target_from_checkpoint || what.find("'" + s.target + "'") == std::string::npos)
                    throw;
                throw value_error(what + " (--evaluate: '" + s.target +
                                  "' is the target of the model in " + s.evaluate + ")");
            }
        }();
        auto net = make_network(s, p.table.features.cols(), output_width(s, p));
        if (!s.quiet) {
            std::printf("%s: %td rows, %td features, %s '%s'; split %zu / %zu / %zu (train / validation / test)\n",
                        s.file.c_str(), p.table.features.rows(), p.table.features.cols(),
                        s.classify() ? (std::to_string(p.table.class_names.size()) + " classes of").c_str()
                                     : "regression on",
                        s.target.c_str(), p.rows.train.size(), p.rows.validation.size(), p.rows.test.size());
        }
        Run run;
        if (!s.evaluate.empty()) {
            load_checkpoint(s.evaluate, *net);
            if (!s.quiet) std::printf("loaded %s\n", s.evaluate.c_str());
        } else {
            std::map<std::string, std::string> metadata = p.features.metadata();
            if (p.target_scaler) metadata.merge(p.target_scaler->metadata("target_scaler."));
            metadata[kConfigKey] = model_config(s).dump();
            const std::filesystem::path checkpoint(s.checkpoint);
            if (checkpoint.has_parent_path())
                std::filesystem::create_directories(checkpoint.parent_path());
            if (!s.quiet) {
                std::string widths = std::to_string(p.table.features.cols());
                for (const Index h : s.hidden) widths += " -> " + std::to_string(h);
                std::printf("MLP %s -> %td (%s), %td parameters; %s lr %g, weight decay %g, batch %td\n",
                            widths.c_str(), output_width(s, p), s.activation.c_str(),
                            net->parameter_count(), s.optimizer.c_str(), s.lr, s.weight_decay, s.batch);
                std::fflush(stdout);
            }
            run = train(s, *net, p, metadata);
            if (!s.quiet) {
                std::printf("trained %zu epochs in %.3f s; best validation loss at epoch %lld%s\n",
                            run.epochs.size(), run.train_seconds, static_cast<long long>(run.best_epoch),
                            s.checkpoint.empty() ? "" : (", saved to " + s.checkpoint).c_str());
            }
        }
        const Scores validation = score(*net, *p.validation, p);
        const Scores test = score(*net, *p.test, p);
        if (!s.quiet) {
            print_scores(s, p, "validation", validation);
            print_scores(s, p, "test", test);
        }
        if (!s.report.empty()) {
            write_text_file(s.report, report(s, p, run, validation, test).dump(1) + "\n");
            if (!s.quiet) std::printf("wrote report: %s\n", s.report.c_str());
        }
    } catch (const std::exception& e) {
        std::cerr << "gradscope-tabular: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
