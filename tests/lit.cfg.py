# lit configuration for halo's FileCheck tests (tests/lit/**.mlir, **.json).
import os
import sys

import lit.formats
from lit.llvm import llvm_config

config.name = "halo"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.join(os.path.dirname(__file__), "lit")
config.test_exec_root = os.path.join(config.halo_obj_root, "tests", "lit")
config.excludes = ["Inputs", "CMakeLists.txt", "check_curves.py"]

config.substitutions.append(("%examples", os.path.join(config.halo_src_root, "examples")))
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(["halo-opt", "haloc", "halo-run"], [config.halo_tools_dir])
