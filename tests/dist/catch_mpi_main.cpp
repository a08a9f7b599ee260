// Catch2's runner for the MPI tests: every rank runs every test case, inside one MPI
// environment, and the program fails if any rank's tests failed (so mpiexec's exit status, which
// ctest reads, says whether all passed).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <gradscope/dist/communicator.hpp>

int main(int argc, char** argv) {
    gradscope::dist::Environment mpi(argc, argv);
    const int failed = Catch::Session().run(argc, argv);
    gradscope::dist::Communicator comm;
    return comm.all_reduce_max(failed) == 0 ? 0 : 1;
}
