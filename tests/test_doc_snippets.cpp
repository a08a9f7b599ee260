// The code blocks of README.md and docs/*.md, compiled and run. Each test case below holds one
// block verbatim, between "// clang-format off" and "// clang-format on" (so that its layout
// stays the docs'), after the lines that give it what it assumes (a network, a batch, a file) and
// before the checks of what the docs say it does. The first test case reads the pages (and
// tools/*.md) and fails for a C++ block that is not, whitespace aside, one of those regions here
// or in tests/dist/test_dist.cpp (the MPI fragments, built where MPI is), or a program the docs
// quote whole (examples/readme_*.cpp, examples/distributed_training.cpp): a snippet a reader
// copies compiles.
#include <gradscope/gradscope.hpp>
#include <gradscope/io/early_stopping.hpp>
#include <gradscope/io/safetensors.hpp>

#include <catch2/catch.hpp>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/temp_dir.hpp"

using namespace gradscope;
namespace fs = std::filesystem;

namespace {

const fs::path project_root = fs::path(GRADSCOPE_TEST_DATA_DIR).parent_path().parent_path();

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Runs of spaces and line breaks as one space, none at either end: a block and its copy here
// match however clang-format or a list's indentation laid them out.
std::string collapse_whitespace(std::string_view text) {
    std::string out;
    bool space = false;
    for (const char c : text) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = !out.empty();
        } else {
            if (space) out += ' ';
            out += c;
            space = false;
        }
    }
    return out;
}

std::string trimmed(const std::string& line) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) return {};
    return line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
}

struct CodeBlock {
    std::string where;  // "README.md:52"
    std::string code;
};

std::string lower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

// The C++ blocks of a Markdown file: fenced with ``` or ~~~ (indented, inside a list item, too)
// and tagged cpp, c++, cxx or cc. A tag that is neither C++ nor one of the other languages the
// docs show is an error, so that a block tagged otherwise cannot slip past unchecked.
std::vector<CodeBlock> cpp_blocks(const fs::path& markdown) {
    const std::vector<std::string> cpp_tags{"cpp", "c++", "cxx", "cc"};
    const std::vector<std::string> other_tags{"",      "sh",   "bash", "console",
                                              "cmake", "text", "json", "python"};
    const std::string name = fs::relative(markdown, project_root).generic_string();
    std::vector<CodeBlock> blocks;
    std::istringstream in(read_text(markdown));
    std::string line;
    int number = 0;
    std::string fence;  // the open fence's ``` or ~~~; empty outside a block
    bool cpp = false;
    while (std::getline(in, line)) {
        ++number;
        const std::string text = trimmed(line);
        if (fence.empty()) {
            if (!text.starts_with("```") && !text.starts_with("~~~")) continue;
            fence = text.substr(0, 3);
            std::istringstream info(text.substr(3));
            std::string tag;
            info >> tag;  // the first word of the info string: the language
            tag = lower(tag);
            cpp = std::ranges::find(cpp_tags, tag) != cpp_tags.end();
            if (!cpp && std::ranges::find(other_tags, tag) == other_tags.end()) {
                throw std::runtime_error(name + ":" + std::to_string(number) +
                                         ": a code block tagged '" + tag +
                                         "', which this test does not know");
            }
            if (cpp) blocks.push_back({name + ":" + std::to_string(number), {}});
        } else if (text == fence) {
            fence.clear();
        } else if (cpp) {
            blocks.back().code += line + "\n";
        }
    }
    if (!fence.empty()) throw std::runtime_error(name + ": a code block never closes");
    return blocks;
}

// What the docs may quote, whitespace collapsed: each region between "// clang-format off" and
// "// clang-format on" of a file with fragments...
std::vector<std::string> compiled_fragments(const fs::path& source) {
    const std::string text = read_text(source);
    std::vector<std::string> out;
    const std::string off = "// clang-format off\n", on = "// clang-format on";
    for (auto at = text.find(off); at != std::string::npos; at = text.find(off, at)) {
        at += off.size();
        const auto end = text.find(on, at);
        if (end == std::string::npos) break;
        out.push_back(collapse_whitespace(std::string_view(text).substr(at, end - at)));
        at = end;
    }
    return out;
}

// ...and a whole program after its opening comment lines, as cmake/ReadmeQuotes.cmake has it.
std::string compiled_program(const fs::path& source) {
    std::istringstream in(read_text(source));
    std::string line, body;
    bool opening = true;
    while (std::getline(in, line)) {
        if (opening && line.starts_with("//")) continue;
        opening = false;
        body += line + "\n";
    }
    return collapse_whitespace(body);
}

// What a block prints to std::cout, captured.
class CaptureCout {
public:
    CaptureCout() : previous_(std::cout.rdbuf(text_.rdbuf())) {}
    CaptureCout(const CaptureCout&) = delete;
    CaptureCout& operator=(const CaptureCout&) = delete;
    ~CaptureCout() { std::cout.rdbuf(previous_); }
    [[nodiscard]] std::string text() const { return text_.str(); }

private:
    std::ostringstream text_;
    std::streambuf* previous_;
};

// tests/data/tabular_classes.csv (four numeric columns, three classes) with its class column
// named as the README's wine.csv names it.
void write_wine_csv(const fs::path& path) {
    std::string table = read_text(fs::path(GRADSCOPE_TEST_DATA_DIR) / "tabular_classes.csv");
    const std::string header = "petal,sepal,stem,noise,colour";
    REQUIRE(table.starts_with(header));
    table.replace(0, header.size(), "petal,sepal,stem,noise,class");
    std::ofstream(path, std::ios::binary) << table;
}

std::vector<int> cycling_labels(int rows, int classes) {
    std::vector<int> labels(static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i) labels[static_cast<std::size_t>(i)] = i % classes;
    return labels;
}

}  // namespace

TEST_CASE("every C++ block of the README and docs/ is compiled here or in a quoted program",
          "[docs]") {
    std::vector<fs::path> documents{project_root / "README.md"};
    for (const char* folder : {"docs", "tools"}) {
        for (const auto& entry : fs::recursive_directory_iterator(project_root / folder)) {
            if (entry.path().extension() == ".md") documents.push_back(entry.path());
        }
    }
    std::vector<std::string> compiled =
        compiled_fragments(project_root / "tests" / "test_doc_snippets.cpp");
    for (std::string& fragment :
         compiled_fragments(project_root / "tests" / "dist" / "test_dist.cpp")) {
        compiled.push_back(std::move(fragment));
    }
    for (const char* program : {"readme_example.cpp", "readme_module.cpp", "readme_training.cpp",
                                "distributed_training.cpp"}) {
        compiled.push_back(compiled_program(project_root / "examples" / program));
    }
    std::map<std::string, std::size_t> blocks_per_document;
    for (const fs::path& document : documents) {
        for (const CodeBlock& block : cpp_blocks(document)) {
            INFO(block.where << " is compiled nowhere; copy it into a test case of "
                                "tests/test_doc_snippets.cpp that runs it:\n"
                             << block.code);
            const std::string code = collapse_whitespace(block.code);
            CHECK_FALSE(code.empty());
            CHECK(std::ranges::find(compiled, code) != compiled.end());
            ++blocks_per_document[fs::relative(document, project_root).generic_string()];
        }
    }
    // As many as the pages have today, at least: fewer means the reader above lost some.
    CHECK(blocks_per_document["README.md"] >= 13);
    CHECK(blocks_per_document["docs/GRADIENTS.md"] >= 2);
    CHECK(blocks_per_document["docs/DISTRIBUTED.md"] >= 3);
}

namespace {

// The README's save and resume blocks in a training program: from scratch, or from the
// checkpoint; trains while the loader's epoch is below `epochs`, saves if asked, and returns the
// parameters. Dropout, AdamW's moments, a warm-up and cosine schedule stepped per batch, clipping
// and the shuffle all carry state from one epoch to the next.
std::vector<Matrix<float>> train_until(const data::TensorDataset<float>& dataset,
                                       std::size_t epochs, bool resume, bool save) {
    auto net = mlp<float>({.widths = {4, 16, 16, 3}, .dropout = 0.2, .seed = 1});
    AdamW<float> optimizer(weight_decay_groups(*net), {.lr = 1e-2, .weight_decay = 0.01});
    LinearLR warmup(optimizer, {.start_factor = 0.1, .total_iters = 10});
    CosineAnnealingLR cosine(optimizer, {.T_max = 30});
    SequentialLR schedule({warmup, cosine}, {10});
    data::DataLoader<float> loader(dataset, {.batch_size = 16, .shuffle = true, .seed = 3});
    if (resume) {
        // clang-format off
auto report = load_checkpoint("run.safetensors", *net, optimizer);  // weights, moments, dropout
schedule.load_state(scheduler_state_from_metadata(report.metadata));
loader.set_epoch(std::stoull(report.metadata.at("loader.epoch")));
        // clang-format on
    }
    while (loader.epoch() < epochs) {
        for (const auto& batch : loader) {
            auto loss = cross_entropy((*net)(TensorF::constant(batch.x)), batch.labels);
            optimizer.zero_grad();
            loss.backward();
            clip_grad_norm<float>(net->parameters(), 1.0);
            optimizer.step();
            schedule.step();
        }
    }
    if (save) {
        // clang-format off
auto metadata = scheduler_metadata(schedule.state());       // the schedulers' counters
metadata["loader.epoch"] = std::to_string(loader.epoch());  // the next epoch's shuffle
save_checkpoint("run.safetensors", *net, optimizer, {.metadata = metadata});
        // clang-format on
    }
    std::vector<Matrix<float>> values;
    for (const auto& parameter : net->parameters()) values.push_back(parameter.value());
    return values;
}

}  // namespace

TEST_CASE("README: a run saved after two epochs and resumed takes the uninterrupted run's steps",
          "[docs]") {
    testing::TempDir directory;
    testing::InDirectory here(directory.path);
    const data::TensorDataset<float> dataset(Rng(8).normal_matrix<float>(72, 4),
                                             cycling_labels(72, 3));
    const auto uninterrupted = train_until(dataset, 4, false, false);
    const auto after_two = train_until(dataset, 2, false, true);
    CHECK(after_two != uninterrupted);
    const auto resumed = train_until(dataset, 4, true, false);
    CHECK(resumed == uninterrupted);  // bit for bit
    CHECK(read_checkpoint_metadata("run.safetensors").at("loader.epoch") == "2");
}

// A class with member templates cannot be local to a function: this block is at namespace scope.
namespace readme_activation {
// clang-format off
struct Softsign {  // f(x) = x / (1 + |x|)
    static constexpr const char* name = "softsign";
    template <class T> T value(T x) const { return x / (T(1) + std::abs(x)); }
    template <class T> T derivative(T x, T /*y*/) const {
        const T d = T(1) + std::abs(x);
        return T(1) / (d * d);
    }
};
// clang-format on
}  // namespace readme_activation

TEST_CASE("README: a custom activation serves mlp in float and double, and passes gradcheck",
          "[docs]") {
    using readme_activation::Softsign;
    CHECK(Softsign{}.value(1.0) == 0.5);
    CHECK(Softsign{}.derivative(-3.0, 0.0) == 1.0 / 16.0);
    auto net = mlp<double>({.widths = {2, 32, 3}, .activation = Softsign{}});
    Rng rng(4);
    const auto x = TensorD::parameter(rng.normal_matrix<double>(5, 2));
    const GradcheckReport report =
        gradcheck([&](const std::vector<TensorD>& in) { return (*net)(in[0]); }, {x});
    INFO(report.message);
    CHECK(report.passed);
    CHECK(!report.all_zero);
    // The same type in float, where the layer reports the activation's name.
    auto single = mlp<float>({.widths = {2, 4, 1}, .activation = Softsign{}});
    std::ostringstream printed;
    printed << *single;
    CHECK(printed.str().find("softsign") != std::string::npos);
}

TEST_CASE("README: cross_entropy with class weights, ignore_index and label smoothing", "[docs]") {
    Matrix<double> equal_logits = Matrix<double>::Zero(4, 3);
    const auto logits = TensorD::parameter(equal_logits);
    const std::vector<int> labels{0, 1, -100, 1};
    // clang-format off
auto loss = cross_entropy(logits, labels, {.weight = {1.0, 4.0, 1.0}, .ignore_index = -100,
                                           .label_smoothing = 0.1});
    // clang-format on
    // With equal logits every class costs log 3. PyTorch's weighted smoothing: row i costs
    // (1 - e) w_yi log 3 + e mean(w) log 3, and the mean divides by the sum of w_yi over the rows
    // not ignored (1 + 4 + 4); mean(w) = 2.
    const double expected = (0.9 * 9.0 + 0.1 * 3 * 2.0) / 9.0 * std::log(3.0);
    CHECK(loss.item() == Approx(expected).epsilon(1e-14));
    loss.backward();
    CHECK(logits.grad().row(2).isZero());  // the ignored row
}

TEST_CASE("README: the sharpness of a loss from its Hessian", "[docs]") {
    auto net = mlp<double>({.widths = {3, 6, 3}, .activation = Tanh{}, .seed = 2});
    Rng rng(5);
    const auto x = TensorD::constant(rng.normal_matrix<double>(16, 3));
    const std::vector<int> labels = cycling_labels(16, 3);
    // clang-format off
Hessian<double> hessian(cross_entropy((*net)(x), labels), *net);
auto sharpness = diag::hessian_top_eigenvalues(hessian, {.k = 1});  // sharpness.values[0]
    // clang-format on
    REQUIRE(sharpness.converged);
    // The dense Hessian, one product per unit vector (45 parameters), and its largest eigenvalue.
    const Index n = hessian.size();
    Matrix<double> dense(n, n);
    for (Index j = 0; j < n; ++j) {
        dense.col(j) = hessian.product(Eigen::VectorXd(Eigen::VectorXd::Unit(n, j)));
    }
    const Matrix<double> symmetric = (dense + dense.transpose()) / 2.0;
    const double largest =
        Eigen::SelfAdjointEigenSolver<Matrix<double>>(symmetric).eigenvalues().maxCoeff();
    // The top Ritz value has converged to the top eigenvalue: within its residual bound (and
    // rounding), which is below 1e-4 of it.
    CHECK(std::abs(sharpness.values[0] - largest) <=
          sharpness.residuals[0] + 1e-12 * std::abs(largest));
    CHECK(sharpness.residuals[0] <= 1e-4 * largest);
}

TEST_CASE("README: measure_depth shows the gradient vanishing through 20 sigmoid layers",
          "[docs]") {
    // clang-format off
auto profile = diag::measure_depth<double>(Sigmoid{}, init::xavier_normal(), {.depth = 20});
CHECK(profile.ratio_first_last() < 1e-9);   // 20 sigmoid layers: the gradient vanishes
    // clang-format on
    CHECK(profile.verdict() == diag::Verdict::vanishing);
}

TEST_CASE("README: parameter groups, by recipe and by name", "[docs]") {
    auto net = mlp<float>({.widths = {4, 8, 8, 3}, .seed = 1});
    // clang-format off
AdamW<float> adamw(weight_decay_groups(*net), {.lr = 1e-3, .weight_decay = 0.05});
auto head = [](const std::string& name, TensorRole) { return name.starts_with("layers.2."); };
auto body = [&](const std::string& name, TensorRole role) { return !head(name, role); };
SGD<float> sgd({{net->named_parameters_matching(head), {.lr = 1e-2}},
                {net->named_parameters_matching(body), {}}},
               {.lr = 1e-3, .momentum = 0.9});
    // clang-format on
    // weight_decay_groups: the weights decay, the biases do not.
    REQUIRE(adamw.group_count() == 2);
    CHECK(adamw.options(0).weight_decay == 0.05);
    CHECK(adamw.options(1).weight_decay == 0.0);
    CHECK(adamw.group_params(0).size() == 3);
    CHECK(adamw.group_params(1).size() == 3);
    // The head (the output layer's weight and bias) has its own lr; both groups take the
    // defaults' momentum, and the body the defaults' lr.
    REQUIRE(sgd.group_count() == 2);
    CHECK(sgd.group_params(0).size() == 2);
    CHECK(sgd.group_params(1).size() == 4);
    CHECK(&sgd.group_params(0)[0].node() == &net->parameters()[4].node());
    CHECK(sgd.lr(0) == 1e-2);
    CHECK(sgd.lr(1) == 1e-3);
    CHECK(sgd.options(0).momentum == 0.9);
    CHECK(sgd.options(1).momentum == 0.9);
}

TEST_CASE("README: warm-up then cosine, and a one-cycle schedule per batch", "[docs]") {
    auto net = mlp<float>({.widths = {4, 8, 3}, .seed = 1});
    Adam<float> adam(net->parameters(), {.lr = 1e-3});
    SGD<float> sgd(net->parameters(), {.lr = 1e-3});
    const std::int64_t steps = 2000;
    Matrix<float> features = Matrix<float>::Zero(100, 4);
    data::DataLoader<float> loader(data::TensorDataset<float>(features, cycling_labels(100, 3)),
                                   {.batch_size = 32});
    // clang-format off
LinearLR warmup(adam, {.start_factor = 0.01, .total_iters = 500});
CosineAnnealingLR cosine(adam, {.T_max = steps - 500});
SequentialLR schedule({warmup, cosine}, {500});   // after each adam.step(): schedule.step()
OneCycleLR one_cycle(sgd, {.max_lr = 0.1, .epochs = 10, .steps_per_epoch = loader.size()});
    // clang-format on
    CHECK(adam.lr() == Approx(1e-5).epsilon(1e-12));
    for (int step = 0; step < 250; ++step) schedule.step();
    CHECK(adam.lr() == Approx(1e-3 * (0.01 + 0.99 * 250 / 500)).epsilon(1e-12));
    for (int step = 250; step < 500; ++step) schedule.step();
    CHECK(adam.lr() == Approx(1e-3).epsilon(1e-12));  // the cosine starts from the base lr
    for (int step = 500; step < 1250; ++step) schedule.step();
    CHECK(adam.lr() == Approx(0.5e-3).epsilon(1e-12));  // half way down the cosine

    // 4 batches of 32 (the last one of 4 rows) per epoch, 40 steps: the lr starts at
    // max_lr / div_factor (25), peaks at 0.1 at 30% of the steps and ends near zero.
    CHECK(loader.size() == 4);
    CHECK(sgd.lr() == Approx(0.1 / 25).epsilon(1e-12));
    double peak = 0.0;
    for (int step = 1; step < 40; ++step) {
        one_cycle.step();
        if (step == 11) CHECK(sgd.lr() == Approx(0.1).epsilon(1e-12));  // 0.3 * 40 - 1
        peak = std::max(peak, sgd.lr());
    }
    CHECK(peak == Approx(0.1).epsilon(1e-12));
    CHECK(sgd.lr() < 1e-5);
}

TEST_CASE("README: a CSV table split, scaled, batched and saved with its scaler", "[docs]") {
    testing::TempDir directory;
    write_wine_csv(directory.path / "wine.csv");
    testing::InDirectory here(directory.path);
    // clang-format off
auto table = data::read_tabular_csv<float>("wine.csv", {.target = "class"});
auto parts = data::split(table.dataset(), {.test = 0.2, .seed = 1, .stratify = true});
data::StandardScaler<float> scaler;
scaler.fit(parts.train.features());
data::DataLoader<float> loader(data::TensorDataset<float>(scaler.transform(parts.train.features()),
                                                          parts.train.labels()),
                               {.batch_size = 32, .shuffle = true, .seed = 1});
const auto classes = Index(table.class_names.size());
auto net = mlp<float>({.widths = {parts.train.feature_count(), 32, classes}, .seed = 1});
Adam<float> optimizer(net->parameters(), {.lr = 1e-2});
for (int epoch = 0; epoch < 100; ++epoch) {
    for (const auto& batch : loader) {
        auto loss = cross_entropy((*net)(TensorF::constant(batch.x)), batch.labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    }
}
save_checkpoint("wine.safetensors", *net, {.metadata = scaler.metadata()});
    // clang-format on
    CHECK(table.class_names == std::vector<std::string>{"amber", "cobalt", "crimson"});
    CHECK(parts.train.size() + parts.test.size() == 180);
    CHECK(parts.test.size() == 36);
    // The three classes are well apart: the network has learnt them.
    net->eval();
    const Matrix<float> x_test = scaler.transform(parts.test.features());
    CHECK(metrics::accuracy((*net)(TensorF::constant(x_test)).value(), parts.test.labels()) > 0.9);
    // The file's metadata gives the scaler back, bit for bit.
    const auto restored =
        data::StandardScaler<float>::from_metadata(read_checkpoint_metadata("wine.safetensors"));
    CHECK(restored.transform(parts.test.features()) == scaler.transform(parts.test.features()));
}

TEST_CASE("README: early stopping keeps the best epoch's weights", "[docs]") {
    testing::TempDir directory;
    testing::InDirectory here(directory.path);
    auto net = mlp<float>({.widths = {4, 8, 3}, .seed = 1});
    data::StandardScaler<float> scaler;
    scaler.fit(Rng(3).normal_matrix<float>(20, 4));
    // Each epoch writes its number (from 0) into one weight; the validation loss is lowest at
    // the 31st epoch, which writes 30.
    int trained = -1;
    auto train_one_epoch = [&] {
        ++trained;
        net->parameters()[0].data()(0, 0) = static_cast<float>(trained);
    };
    auto validation_loss = [&] { return 1.0 + std::abs(trained - 30); };
    // clang-format off
EarlyStopping<float> stopper(*net, {.patience = 20, .checkpoint = "best.safetensors",
                                    .metadata = scaler.metadata()});
for (int epoch = 0; epoch < 500; ++epoch) {
    train_one_epoch();
    if (stopper.step(validation_loss())) break;
}
stopper.restore_best();
    // clang-format on
    CHECK(trained == 50);  // twenty epochs without a better loss after the one that wrote 30
    CHECK(stopper.best_epoch() == 31);  // epochs count from 1
    CHECK(net->parameters()[0].data()(0, 0) == 30.0f);
    const auto metadata = read_checkpoint_metadata("best.safetensors");
    CHECK(metadata.at("early_stopping.best_epoch") == "31");
    CHECK(data::StandardScaler<float>::from_metadata(metadata).metadata() == scaler.metadata());
}

TEST_CASE("README: a classification report of a network in evaluation mode", "[docs]") {
    auto net = mlp<float>({.widths = {4, 16, 3}, .dropout = 0.5, .seed = 1});
    const Matrix<float> x_test = Rng(4).normal_matrix<float>(30, 4);
    const std::vector<int> y_test = cycling_labels(30, 3);
    CaptureCout printed;
    // clang-format off
net->eval();  // Dropout off, BatchNorm1d on its running statistics; net->train() switches back
const auto logits = (*net)(TensorF::constant(x_test));
std::cout << metrics::classification_report(logits, y_test);
    // clang-format on
    CHECK_FALSE(net->is_training());
    // Dropout is off: the same input gives the same logits, and so the same report.
    const auto again = (*net)(TensorF::constant(x_test));
    CHECK(again.value() == logits.value());
    // scikit-learn's layout: the accuracy row holds the accuracy to two digits and the support,
    // right-aligned in columns of 9 after a first as wide as "weighted avg" and two spaces.
    const double accuracy = metrics::accuracy(logits.value(), y_test);
    char row[80];
    std::snprintf(row, sizeof row, "%12s  %9s %9s %9.2f %9d\n", "accuracy", "", "", accuracy, 30);
    CHECK(printed.text().find(row) != std::string::npos);
    CHECK(printed.text().find("weighted avg") != std::string::npos);
}

TEST_CASE("docs/GRADIENTS.md: a depth-100 tanh network on the edge of chaos", "[docs]") {
    // clang-format off
const auto edge = init::critical(Tanh{}, {.sigma_b2 = 0.05});  // sigma_w2 = 1.761
auto net = mlp<double>({.widths = std::vector<Index>(101, 256), .activation = Tanh{},
                        .init = edge, .bias_init = edge.bias()});
    // clang-format on
    CHECK(edge.sigma_w2 == Approx(1.761).margin(5e-4));
    // The weights are N(0, sigma_w2 / 256) and the biases N(0, 0.05): the mean squares over all
    // 100 layers (6.5 million and 25600 draws, standard errors sqrt(2 / n) = 0.055% and 0.88%)
    // are within 0.3% and 5%, five or six standard errors.
    double weight_squares = 0.0;
    double bias_squares = 0.0;
    std::size_t weights = 0;
    std::size_t biases = 0;
    for (const auto& [name, tensor] : net->named_parameters()) {
        const double squares = tensor.value().template cast<double>().squaredNorm();
        if (name.ends_with("weight")) {
            weight_squares += squares;
            weights += static_cast<std::size_t>(tensor.value().size());
        } else {
            bias_squares += squares;
            biases += static_cast<std::size_t>(tensor.value().size());
        }
    }
    CHECK(weights == 100u * 256u * 256u);
    CHECK(weight_squares / static_cast<double>(weights) ==
          Approx(edge.sigma_w2 / 256.0).epsilon(0.003));
    CHECK(bias_squares / static_cast<double>(biases) == Approx(0.05).epsilon(0.05));
}

TEST_CASE("docs/GRADIENTS.md: DP-SGD with per-sample clipping", "[docs]") {
    auto net = mlp<float>({.widths = {4, 16, 3}, .seed = 1});
    SGD<float> optimizer(net->parameters(), {.lr = 0.1});
    Rng rng(7);
    Matrix<float> features = rng.normal_matrix<float>(64, 4) * 5.0f;
    data::DataLoader<float> loader(data::TensorDataset<float>(features, cycling_labels(64, 3)),
                                   {.batch_size = 16, .shuffle = true, .seed = 1});
    const Matrix<float> before = net->parameters()[0].value();
    // clang-format off
PerSampleClipper<float> clipper(*net, {.loss_reduction = Reduction::mean});
for (const auto& batch : loader) {
    net->zero_grad();
    cross_entropy((*net)(TensorF::constant(batch.x)), batch.labels).backward();
    clipper.clip(1.0, 1.1, rng);  // C = 1, σ = 1.1; clip(1.0) clips without noise
    optimizer.step();
}
    // clang-format on
    CHECK(net->parameters()[0].value() != before);
    // Without noise, the mean of gradients clipped to norm 1 has norm at most 1.
    net->zero_grad();
    cross_entropy((*net)(TensorF::constant(features)), cycling_labels(64, 3)).backward();
    const auto result = clipper.clip(1.0);
    CHECK(result.batch == 64);
    CHECK(result.clipped > 0);
    double squares = 0.0;
    for (const auto& parameter : net->parameters()) {
        squares += parameter.grad().template cast<double>().squaredNorm();
    }
    CHECK(std::sqrt(squares) <= 1.0 + 1e-6);
    // With noise: the same clipped gradient plus N(0, (1.1 C / B)^2) per entry, B = 64; over the
    // 131 entries the sample standard deviation is within 25% (about four standard errors).
    std::vector<Matrix<float>> clipped;
    for (const auto& parameter : net->parameters()) clipped.push_back(parameter.grad());
    net->zero_grad();
    cross_entropy((*net)(TensorF::constant(features)), cycling_labels(64, 3)).backward();
    clipper.clip(1.0, 1.1, rng);
    double noise_squares = 0.0;
    std::size_t entries = 0;
    const auto parameters = net->parameters();
    for (std::size_t i = 0; i < parameters.size(); ++i) {
        noise_squares += (parameters[i].grad() - clipped[i]).template cast<double>().squaredNorm();
        entries += static_cast<std::size_t>(clipped[i].size());
    }
    CHECK(entries == 131);
    CHECK(std::sqrt(noise_squares / static_cast<double>(entries)) ==
          Approx(1.1 / 64).epsilon(0.25));
}
