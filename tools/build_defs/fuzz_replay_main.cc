// main() for a libFuzzer target outside --config=fuzz: feeds each corpus file
// to LLVMFuzzerTestOneInput once, so the corpus runs as a regression test
// under `bazel test` (see fuzz.bzl). Files come from the command line, or else
// from the corpus directory fuzz.bzl names in TASKFORK_FUZZ_CORPUS.
#include <dirent.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> CorpusFiles() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  const char* corpus = std::getenv("TASKFORK_FUZZ_CORPUS");
  std::vector<std::string> files;
  if (srcdir == nullptr || workspace == nullptr || corpus == nullptr) {
    return files;
  }
  const std::string dir = std::string(srcdir) + "/" + workspace + "/" + corpus;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    std::fprintf(stderr, "cannot open corpus directory %s\n", dir.c_str());
    std::exit(1);
  }
  while (const dirent* entry = ::readdir(d)) {
    if (entry->d_name[0] != '.') files.push_back(dir + "/" + entry->d_name);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files(argv + 1, argv + argc);
  if (files.empty()) files = CorpusFiles();
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s CORPUS_FILE... (or run under bazel test)\n",
                 argv[0]);
    return 2;
  }
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read corpus file %s\n", file.c_str());
      return 1;
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                           bytes.size());
  }
  std::printf("replayed %zu corpus files\n", files.size());
  return 0;
}
