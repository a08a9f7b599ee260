// A downstream MPI program: the component `mpi` of the installed package gives gradscope::mpi,
// and DataParallel averages two ranks' gradients. Rank r sees the input r + 1, so the gradient of
// sum(w x + b) is (r + 1, 1) there and its average over P ranks is ((P + 1) / 2, 1).
#include <gradscope/dist.hpp>

#include <cmath>
#include <iostream>

int main(int argc, char** argv) {
    gradscope::dist::Environment mpi(argc, argv);
    gradscope::dist::Communicator comm;
    using namespace gradscope;
    auto net = mlp<double>({.widths = {1, 1}, .seed = 3});
    dist::DataParallel<double> ddp(*net, comm);
    const auto x = TensorD::constant(Matrix<double>::Constant(1, 1, comm.rank() + 1.0));
    sum(ddp(x)).backward();
    const auto params = net->parameters();
    const double expected_weight = (comm.size() + 1) / 2.0;
    if (std::abs(params[0].grad()(0, 0) - expected_weight) > 1e-15 ||
        std::abs(params[1].grad()(0, 0) - 1.0) > 1e-15) {
        std::cerr << "rank " << comm.rank() << ": gradients " << params[0].grad()(0, 0) << ", "
                  << params[1].grad()(0, 0) << ", expected " << expected_weight << ", 1\n";
        return 1;
    }
    std::cout << "rank " << comm.rank() << " of " << comm.size() << ": averaged gradient ok\n";
    return 0;
}
