// libFuzzer target for the scenario loader (docs/scenarios.md, "Fuzzing the loader").
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DDYNASIM_FUZZ=ON
//   cmake --build build-fuzz --target scenario_fuzz
//   ./build-fuzz/scenario_fuzz -dict=tests/fuzz/scenario.dict build-fuzz/corpus scenarios/
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/scenario_loader_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dynasim::gameday::load_scenario_bytes(data, size);
  return 0;
}
