// The CSV reader (RFC 4180) and tabular datasets from CSV: quoting, line endings, the errors a
// user meets (file, line, column), class labels as numbers or strings.
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

#include <gradscope/data.hpp>

#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;
using data::parse_csv;
using Rows = std::vector<std::vector<std::string>>;

TEST_CASE("quoted fields hold delimiters, doubled quotes and line breaks", "[csv]") {
    const auto t = parse_csv("name,note\n\"a,b\",\"say \"\"hi\"\"\"\n\"two\nlines\",x\nlast,\n");
    CHECK(t.header == std::vector<std::string>{"name", "note"});
    CHECK(t.rows == Rows{{"a,b", "say \"hi\""}, {"two\nlines", "x"}, {"last", ""}});
    // The row after a quoted line break starts on line 5, not 4.
    CHECK(t.lines == std::vector<std::size_t>{2, 3, 5});
}

TEST_CASE("CRLF, a lone CR, a byte order mark and blank lines read as plain LF does", "[csv]") {
    const auto lf = parse_csv("a,b\n1,2\n3,4\n");
    for (const std::string text : {"a,b\r\n1,2\r\n3,4\r\n",
                                   "\xEF\xBB\xBF"
                                   "a,b\r\n1,2\r\n\r\n3,4",
                                   "a,b\r1,2\r3,4\r", "a,b\n\n1,2\n3,4\n\n"}) {
        const auto t = parse_csv(text);
        CHECK(t.header == lf.header);
        CHECK(t.rows == lf.rows);
    }
    // A CRLF inside quotes is data, kept as it is.
    CHECK(parse_csv("a\r\n\"x\r\ny\"\r\n").rows == Rows{{"x\r\ny"}});
    CHECK(parse_csv("a;b\n1,5;2\n", "<memory>", {.delimiter = ';'}).rows == Rows{{"1,5", "2"}});
}

TEST_CASE("malformed CSV is an io_error naming the source and the line", "[csv]") {
    REQUIRE_THROWS_MATCHES(parse_csv("a,b\n1,2\n3\n", "t.csv"), io_error,
                           MessageContains({"t.csv, line 3", "1 fields, but the header has 2"}));
    REQUIRE_THROWS_MATCHES(parse_csv("a,b\n1,x\"y\n", "t.csv"), io_error,
                           MessageContains({"t.csv, line 2", "quote inside an unquoted field"}));
    REQUIRE_THROWS_MATCHES(parse_csv("a,b\n\"1\"x,2\n", "t.csv"), io_error,
                           MessageContains({"line 2", "text after a closing quote"}));
    REQUIRE_THROWS_MATCHES(parse_csv("a,b\n1,2\n\"open,3\n4,5\n", "t.csv"), io_error,
                           MessageContains({"line 3", "never closed"}));
    REQUIRE_THROWS_MATCHES(parse_csv("a,a\n", "t.csv"), io_error,
                           MessageContains("two columns are named 'a'"));
    REQUIRE_THROWS_MATCHES(parse_csv("a,,c\n", "t.csv"), io_error,
                           MessageContains("column 2 of the header has no name"));
    REQUIRE_THROWS_MATCHES(parse_csv("\n\n", "t.csv"), io_error, MessageContains("t.csv: empty"));
    REQUIRE_THROWS_MATCHES(data::read_csv("/nonexistent/x.csv"), io_error,
                           MessageContains({"/nonexistent/x.csv", "cannot be opened"}));
}

namespace {
// Written to a real file: the error messages name it.
const char* const iris_like =
    "sepal,petal,\"species name\",weight\r\n"
    "1.5, 0.25 ,setosa,10\r\n"
    "2,0.5,\"virginica\",+20\r\n"
    "-3e1,1,setosa,30\r\n"
    "4,2,versicolor,40\r\n";
}  // namespace

TEST_CASE("a CSV file becomes features and string labels mapped to sorted indices", "[csv]") {
    TempDir dir;
    const auto path = write_file(dir.path / "flowers.csv", std::string(iris_like));
    const auto t = data::read_tabular_csv<double>(path, {.target = "species name"});
    CHECK(t.feature_names == std::vector<std::string>{"sepal", "petal", "weight"});
    CHECK(t.class_names == std::vector<std::string>{"setosa", "versicolor", "virginica"});
    CHECK(t.labels == std::vector<int>{0, 2, 0, 1});
    Matrix<double> expected(4, 3);
    expected << 1.5, 0.25, 10, 2, 0.5, 20, -30, 1, 30, 4, 2, 40;
    CHECK(t.features == expected);
    const auto dataset = t.dataset();
    CHECK(dataset.has_labels());
    CHECK(dataset.size() == 4);

    // Chosen features, in the order asked for; a numeric target as a regression target.
    const auto r = data::read_tabular_csv<float>(
        path,
        {.target = "weight", .target_kind = data::Target::values, .features = {"petal", "sepal"}});
    CHECK(r.feature_names == std::vector<std::string>{"petal", "sepal"});
    CHECK(r.features(2, 0) == 1.0F);
    CHECK(r.features(2, 1) == -30.0F);
    CHECK(r.targets.cols() == 1);
    CHECK(r.targets(1, 0) == 20.0F);
    CHECK(r.labels.empty());
    CHECK_FALSE(r.dataset().has_labels());
}

TEST_CASE("numeric class labels are mapped in numeric order, and the mapping is kept", "[csv]") {
    const auto t = data::tabular_from_csv<double>(parse_csv("x,class\n1,10\n2,2\n3,-1\n4,2\n"),
                                                  {.target = "class"});
    CHECK(t.class_names == std::vector<std::string>{"-1", "2", "10"});  // not "-1", "10", "2"
    CHECK(t.labels == std::vector<int>{2, 1, 0, 1});
    // Whole numbers written with a fraction part are still classes.
    CHECK(data::tabular_from_csv<double>(parse_csv("x,class\n1,1.0\n2,0.0\n"), {.target = "class"})
              .labels == std::vector<int>{1, 0});
}

TEST_CASE("a regression target read as classes is refused with the option that reads it", "[csv]") {
    const auto table = parse_csv("x,y\n1,3\n2,-2.06438\n3,0.5\n", "r.csv");
    REQUIRE_THROWS_MATCHES(
        data::tabular_from_csv<double>(table, {.target = "y"}), value_error,
        MessageContains({"r.csv, line 3, column 'y'", "'-2.06438' is not a class label",
                         ".target_kind = data::Target::values"}));
    const auto r =
        data::tabular_from_csv<double>(table, {.target = "y", .target_kind = data::Target::values});
    CHECK(r.targets(1, 0) == -2.06438);
}

TEST_CASE("a missing or unparseable value names the file, the line and the column", "[csv]") {
    TempDir dir;
    const auto path =
        write_file(dir.path / "holes.csv", std::string("a,b,y\n1,2,0\n3,,1\n5,six,0\n7,8,\n"));
    const std::string file = path.string();
    REQUIRE_THROWS_MATCHES(data::read_tabular_csv<double>(path, {.target = "y"}), io_error,
                           MessageContains({file + ", line 3, column 'b'", "missing value"}));
    // Without column b the first bad value is the missing label on line 5.
    REQUIRE_THROWS_MATCHES(data::read_tabular_csv<double>(path, {.target = "y", .features = {"a"}}),
                           io_error,
                           MessageContains({file + ", line 5, column 'y'", "missing class label"}));
    const auto table = parse_csv("a,y\n1,0\nnan,1\n", "n.csv");
    REQUIRE_THROWS_MATCHES(data::tabular_from_csv<double>(table, {.target = "y"}), io_error,
                           MessageContains({"n.csv, line 3, column 'a'", "'nan' is not a finite"}));
    const auto huge = parse_csv("a,y\n1e300,0\n", "h.csv");
    CHECK(data::tabular_from_csv<double>(huge, {.target = "y"}).features(0, 0) == 1e300);
    REQUIRE_THROWS_MATCHES(data::tabular_from_csv<float>(huge, {.target = "y"}), io_error,
                           MessageContains({"h.csv, line 2, column 'a'", "does not fit a float"}));
    const auto words = parse_csv("a,y\n1,0\n2,1\n", "w.csv");
    REQUIRE_THROWS_MATCHES(data::tabular_from_csv<double>(words, {.target = "z"}), value_error,
                           MessageContains({"no column 'z'", "'a', 'y'"}));
    REQUIRE_THROWS_MATCHES(
        data::tabular_from_csv<double>(words, {.target = "y", .features = {"y"}}), value_error,
        MessageContains("is the target column"));
}
