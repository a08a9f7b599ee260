// docs/DISTRIBUTED.md's program, quoted there whole: data-parallel training over MPI. ctest runs
// it on two ranks (example.distributed_training) and checks that the page still quotes it.
#include <gradscope/dist.hpp>
#include <gradscope/dist/checkpoint.hpp>  // needs nlohmann_json, as io/safetensors.hpp

#include <iostream>

int main(int argc, char** argv) {
    using namespace gradscope;
    dist::Environment mpi(argc, argv);  // MPI_Init_thread; MPI_Finalize at the end
    dist::Communicator comm;            // every rank of MPI_COMM_WORLD

    // The same training set on every rank: 4096 seeded random rows of 784 "pixels", each labelled
    // by which of its first ten is largest.
    Matrix<float> images = Rng(7).normal_matrix<float>(4096, 784);
    std::vector<int> labels(4096);
    for (Index i = 0; i < images.rows(); ++i) images.row(i).head(10).maxCoeff(&labels[i]);
    data::TensorDataset<float> train_set(images, labels);

    auto net = mlp<float>({.widths = {784, 256, 256, 10}, .norm = Normalization::batch, .seed = 1});
    dist::synchronize_batch_norm(*net, comm);   // if it has BatchNorm1d layers: SyncBatchNorm
    dist::DataParallel<float> ddp(*net, comm);  // checks the ranks agree, copies rank 0's weights
    AdamW<float> optimizer(net->parameters(), {.lr = 1e-3});

    // Each rank its own shard of every epoch (a quarter on four ranks), the same shuffle on all.
    auto sampler = std::make_shared<data::DistributedSampler>(data::DistributedSampler::Options{
        .rank = std::size_t(comm.rank()), .world_size = std::size_t(comm.size()), .seed = 7});
    data::DataLoader<float> loader(train_set, {.batch_size = 64, .sampler = sampler});

    for (int epoch = 0; epoch < 3; ++epoch) {
        double total = 0.0;
        for (const auto& batch : loader) {
            auto loss = cross_entropy(ddp(TensorF::constant(batch.x)), batch.labels);
            optimizer.zero_grad();
            loss.backward();   // gradients averaged over the ranks before backward returns
            optimizer.step();  // the same step on every rank
            total += loss.item();
        }
        double mean = total / double(loader.size());  // this rank's mean loss over its shard
        comm.all_reduce_sum(std::span(&mean, 1));     // summed over the ranks
        if (comm.rank() == 0) {
            std::cout << "epoch " << epoch << "  loss " << mean / comm.size() << "\n";
        }
    }
    dist::save_checkpoint(comm, "model.safetensors", *net, optimizer);  // rank 0 writes
}
