// Writes the fuzzer's seed corpus (one file per valid input from
// fuzz_types.h) into the directory given as the only argument:
//   tools/bazel run //serialize:make_fuzz_seeds -- $PWD/serialize/testdata/fuzz
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "serialize/fuzz_types.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  const std::vector<std::string> seeds = taskfork::serialize::fuzz::FuzzSeeds();
  for (size_t i = 0; i < seeds.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "/seed-%02zu-type-%02d", i,
                  static_cast<unsigned char>(seeds[i][0]) & 0x1f);
    std::ofstream out(std::string(argv[1]) + name, std::ios::binary);
    out.write(seeds[i].data(), static_cast<std::streamsize>(seeds[i].size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s%s\n", argv[1], name);
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", seeds.size(), argv[1]);
  return 0;
}
