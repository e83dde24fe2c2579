//===- StreamPlanTest.cpp - The two-stream schedule of a step -------------===//
//
// Small step lists with hand-made byte ranges: which steps go to the side
// stream and which cross-stream waits planTwoStreams adds, including the
// hazards an arena slot reused by the memory plan creates.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/exec/StreamPlan.h"

#include <gtest/gtest.h>

namespace halo::cuda {
namespace {

ByteRange r(uint64_t begin, uint64_t end) { return {begin, end}; }

StepAccess step(std::vector<ByteRange> reads, std::vector<ByteRange> writes, bool gemm = false,
                bool weightGradient = false) {
  StepAccess s;
  s.reads = std::move(reads);
  s.writes = std::move(writes);
  s.gemm = gemm || weightGradient;
  s.weightGradient = weightGradient;
  return s;
}

TEST(StreamPlan, NoWeightGradientMeansOneStream) {
  StreamPlan p = planTwoStreams({step({r(0, 8)}, {r(8, 16)}), step({r(8, 16)}, {r(16, 24)}, true)});
  EXPECT_FALSE(p.anySide);
  EXPECT_EQ(p.waitFor, (std::vector<int64_t>{-1, -1}));
}

// E (written by step 0) feeds the input-gradient GEMM (main) and the
// weight-gradient GEMM (side); the side GEMM's result is un-rotated on the
// side stream; the optimizer (main) reads both gradients.
TEST(StreamPlan, WeightGradientChainOnTheSideStream) {
  std::vector<StepAccess> steps = {
      step({r(0, 10)}, {r(100, 110)}),                   // 0 quantize E
      step({r(100, 110), r(200, 210)}, {r(300, 310)}, true), // 1 dX GEMM
      step({r(100, 110), r(400, 410)}, {r(500, 510)}, false, true), // 2 dW GEMM
      step({r(500, 510)}, {r(600, 610)}),                // 3 un-rotate dW
      step({r(300, 310)}, {r(700, 710)}),                // 4 next kernel of the chain
      step({r(600, 610), r(700, 710)}, {r(800, 810)}),   // 5 optimizer
  };
  StreamPlan p = planTwoStreams(steps);
  EXPECT_EQ(p.side, (std::vector<bool>{false, false, true, true, false, false}));
  // The dW GEMM waits for the quantizer; the optimizer for the un-rotation.
  EXPECT_EQ(p.waitFor, (std::vector<int64_t>{-1, -1, 0, -1, -1, 3}));
  EXPECT_EQ(p.signals, (std::vector<bool>{true, false, false, true, false, false}));
}

// The memory plan reuses the side GEMM's input slot for a later main value:
// the main step that overwrites it waits for the side GEMM (write after read).
TEST(StreamPlan, ReusedSlotIsAWriteAfterReadDependency) {
  std::vector<StepAccess> steps = {
      step({r(0, 10)}, {r(100, 110)}),                       // 0
      step({r(100, 110)}, {r(200, 210)}, false, true),       // 1 side reads 100..110
      step({r(0, 10)}, {r(105, 120)}),                       // 2 main overwrites part of it
  };
  StreamPlan p = planTwoStreams(steps);
  EXPECT_EQ(p.side, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(p.waitFor, (std::vector<int64_t>{-1, 0, 1}));
}

// One wait covers everything before it on the other stream; the last side
// step always signals (the main stream joins it at the end).
TEST(StreamPlan, OneWaitPerDependencyAndAFinalJoin) {
  std::vector<StepAccess> steps = {
      step({}, {r(0, 10)}),                              // 0
      step({}, {r(10, 20)}),                             // 1
      step({r(0, 10), r(10, 20)}, {r(30, 40)}, false, true), // 2: waits for 1 only
      step({r(0, 10)}, {r(50, 60)}, false, true),        // 3: already covered by 2's wait
  };
  StreamPlan p = planTwoStreams(steps);
  EXPECT_EQ(p.waitFor, (std::vector<int64_t>{-1, -1, 1, -1}));
  EXPECT_TRUE(p.signals[3]);
  EXPECT_FALSE(p.signals[2]);
}

// A kernel reading one side-written and one main-written value stays main.
TEST(StreamPlan, MixedReadersStayOnTheMainStream) {
  std::vector<StepAccess> steps = {
      step({}, {r(0, 10)}),                        // 0 main
      step({r(0, 10)}, {r(20, 30)}, false, true),  // 1 side
      step({r(20, 30), r(0, 10)}, {r(40, 50)}),    // 2 mixed -> main, waits for 1
      step({r(20, 30)}, {r(60, 70)}),              // 3 side only -> side
  };
  StreamPlan p = planTwoStreams(steps);
  EXPECT_EQ(p.side, (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(p.waitFor[2], 1);
}

} // namespace
} // namespace halo::cuda
