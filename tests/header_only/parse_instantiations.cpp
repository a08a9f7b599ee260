// ctest header_only.parse_instantiations (check_parse_instantiations.cmake): including
// gradscope.hpp must not instantiate Eigen's decompositions or partial reductions, which the
// headers use only inside functions a training program may never call. Built with -DCALL_THEM,
// this file calls those functions, and the check's control asks that every one of the Eigen
// classes is then instantiated: the check can see instantiations at all.
#include <gradscope/gradscope.hpp>

#ifdef CALL_THEM
namespace gs = gradscope;

void call_them(gs::Module<double>& net, const gs::Matrix<double>& x, gs::Rng& rng) {
    const gs::diag::SymmetricOperator<double> identity = [](const auto& v, auto& out) { out = v; };
    (void)gs::diag::top_eigenvalues(identity, 4);  // SelfAdjointEigenSolver
    (void)gs::diag::jacobian_spectrum(net, x);     // BDCSVD
    gs::Matrix<double> w(3, 2);
    gs::init::Orthogonal{}(gs::MatrixView<double>(w.data(), 3, 2), 2, 3, rng);  // HouseholderQR
    gs::data::StandardScaler<double>().fit(x);                                  // PartialReduxExpr
}
#endif

int main() { return 0; }
