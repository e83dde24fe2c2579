//===- halo-run.cpp - Train a compiled halo program -----------------------===//
//
// halo-run <program.halo> --data <tokens.bin> [options]: parses the options,
// loads and validates the program and hands over to the Trainer
// (runtime/train), which runs the steps on the GPU or the CPU oracle. Every
// error is printed and exits 1.
//
//===----------------------------------------------------------------------===//
#include "frontend/config/ModelConfig.h"
#include "runtime/cpu/Program.h"
#include "runtime/train/Trainer.h"

#include <exception>
#include <fmt/format.h>
#include <limits>
#include <string>

namespace halo::run {
namespace {

constexpr const char *kUsage = R"(halo-run: train a program compiled by haloc

Usage:
  halo-run <program.halo> --data <tokens.bin> [options]

Options:
  --data <file>          token dataset (.bin, docs/formats.md); required
  --device cpu|cuda      where to run (default: cuda when a GPU is usable, else
                         cpu, the interpreter that is also the test oracle)
  --steps N              train up to step N (default: the model's train.steps)
  --log-every K          print and record every K steps (default 10; the first
                         and last steps are always logged); the GPU is waited
                         for only at logged steps
  --metrics <file>       write one JSON object per logged step / evaluation
  --seed S               data order and initialisation seed (default:
                         train.seed)
  --eval-every K         every K steps (and at the end) report the loss of
                         `forward` on held-out batches (the last 5% of the
                         token file is never trained on)
  --eval-batches B       held-out batches per evaluation (default 4)
  --init <path>          start from these weights: a safetensors file or a
                         Hugging Face checkpoint folder (config.json +
                         *.safetensors, sharded or not); F32, BF16 or F16
  --save <dir>           write a checkpoint folder at the end (HF-loadable
                         model.safetensors + config.json, AdamW state, step)
  --save-every K         also every K steps (needs --save)
  --resume <dir>         continue a run from its checkpoint folder: the same
                         batches and updates as an uninterrupted run
  --on-nonfinite skip|stop
                         a non-finite loss or gradient norm always skips that
                         step's update on the device; stop also ends the run
                         (default skip; 20 skipped steps in a row end it)
  --peak-tflops F        peak dense TFLOP/s for the MFU column (H100 SXM: 989
                         BF16, 1979 FP8)
  --dump-step <file>     write the first step's parameters, gradients, batch
                         and loss as the device computed them (safetensors)
                         for a reference check against PyTorch
                         (scripts/torch_reference.py); needs a program
                         compiled with haloc --return-grads
  --exact                compute without BF16 rounding (float32 throughout;
                         CPU only), for reference comparisons
  --help                 show this text

Examples:
  halo-run tiny.halo --data examples/data/tiny.bin
  halo-run tiny.halo --data examples/data/tiny.bin --steps 100 --log-every 5 \
      --metrics run.jsonl --eval-every 50 --save ckpt --save-every 50
  halo-run tiny.halo --data examples/data/tiny.bin --steps 200 --resume ckpt
  halo-run tiny.halo --data examples/data/tiny.bin --init ckpt
)";

struct Options : train::TrainOptions {
  bool help = false;
};

StatusOr<uint64_t> parseCount(const std::string &flag, const std::string &text,
                              uint64_t min, uint64_t max) {
  size_t used = 0;
  unsigned long long v = 0;
  bool ok = !text.empty() && text[0] != '-';
  if (ok) {
    try {
      v = std::stoull(text, &used);
    } catch (const std::exception &) {
      ok = false;
    }
  }
  if (!ok || used != text.size() || v < min || v > max)
    return Status::error(fmt::format(
        "{}: expected an integer in [{}, {}], got '{}'", flag, min, max, text));
  return uint64_t(v);
}

StatusOr<Options> parseOptions(int argc, char **argv) {
  Options o;
  constexpr uint64_t kIntMax = std::numeric_limits<int32_t>::max();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    }
    if (arg == "--exact") {
      o.exact = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      if (!o.program.empty())
        return Status::error(fmt::format(
            "unexpected argument '{}' (the program is already '{}'); see "
            "halo-run --help",
            arg, o.program));
      o.program = arg;
      continue;
    }
    std::string flag = arg, value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Status::error(
          fmt::format("{} needs a value; see halo-run --help", flag));
    }
    auto count = [&](uint64_t min, uint64_t max) {
      return parseCount(flag, value, min, max);
    };
    StatusOr<uint64_t> n = uint64_t(0);
    if (flag == "--data") {
      o.data = value;
    } else if (flag == "--device") {
      if (value != "cpu" && value != "cuda")
        return Status::error(fmt::format(
            "--device: unknown device '{}' (expected cpu or cuda)", value));
      o.device = value;
    } else if (flag == "--steps") {
      if ((n = count(1, kIntMax)).ok())
        o.steps = int64_t(*n);
    } else if (flag == "--log-every") {
      if ((n = count(1, kIntMax)).ok())
        o.logEvery = int64_t(*n);
    } else if (flag == "--metrics") {
      o.metrics = value;
    } else if (flag == "--seed") {
      if ((n = count(0, std::numeric_limits<uint64_t>::max())).ok())
        o.seed = *n;
    } else if (flag == "--eval-every") {
      if ((n = count(1, kIntMax)).ok())
        o.evalEvery = int64_t(*n);
    } else if (flag == "--eval-batches") {
      if ((n = count(1, 1 << 20)).ok())
        o.evalBatches = int64_t(*n);
    } else if (flag == "--init") {
      o.init = value;
    } else if (flag == "--save") {
      o.save = value;
    } else if (flag == "--save-every") {
      if ((n = count(1, kIntMax)).ok())
        o.saveEvery = int64_t(*n);
    } else if (flag == "--resume") {
      o.resume = value;
    } else if (flag == "--on-nonfinite") {
      if (value != "skip" && value != "stop")
        return Status::error(fmt::format(
            "--on-nonfinite: expected skip or stop, got '{}'", value));
      o.stopOnNonFinite = value == "stop";
    } else if (flag == "--peak-tflops") {
      try {
        size_t used = 0;
        o.peakTflops = std::stod(value, &used);
        if (used != value.size() || !(o.peakTflops > 0))
          throw std::invalid_argument(value);
      } catch (const std::exception &) {
        return Status::error(fmt::format(
            "--peak-tflops: expected a positive number, got '{}'", value));
      }
    } else if (flag == "--dump-step") {
      o.dumpStep = value;
    } else {
      return Status::error(
          fmt::format("unknown option '{}'; see halo-run --help", flag));
    }
    if (!n.ok())
      return n.status();
  }
  if (o.program.empty())
    return Status::error("missing the program file; usage: halo-run "
                         "<program.halo> --data <tokens.bin> (see --help)");
  if (o.data.empty())
    return Status::error(fmt::format(
        "missing --data <tokens.bin>: the token file to train on (e.g. "
        "`halo-run {} --data examples/data/tiny.bin`)",
        o.program));
  if (o.saveEvery > 0 && o.save.empty())
    return Status::error("--save-every needs --save <dir>");
  if (!o.resume.empty() && !o.init.empty())
    return Status::error("--resume and --init both set the starting weights; give one");
  return o;
}

Status runMain(int argc, char **argv) {
  StatusOr<Options> options = parseOptions(argc, argv);
  if (!options.ok())
    return options.status();
  if (options->help) {
    fmt::print("{}", kUsage);
    return Status::success();
  }
  StatusOr<cpu::Program> program = cpu::readProgram(options->program);
  if (!program.ok())
    return program.status();
  StatusOr<frontend::ModelConfig> cfg = frontend::parseModelConfigString(
      program->modelJson, options->program + " (model)");
  if (!cfg.ok())
    return cfg.status();
  return train::train(*options, *program, *cfg);
}

} // namespace
} // namespace halo::run

int main(int argc, char **argv) {
  try {
    halo::Status status = halo::run::runMain(argc, argv);
    if (status.ok())
      return 0;
    fmt::print(stderr, "halo-run: error: {}\n", status.message());
  } catch (const std::exception &e) {
    // Allocation failures and other exceptions end the run with a message.
    fmt::print(stderr, "halo-run: error: {}\n", e.what());
  }
  return 1;
}
