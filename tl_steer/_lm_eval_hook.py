"""Run at interpreter start by ``tl_steer_lm_eval.pth`` (``python -m tl_steer.harness --install``). It imports
nothing heavy: it waits for ``lm_eval.api.registry`` to be imported, then wraps its ``get_model`` so that the name
``tl_steer`` imports ``tl_steer.harness`` (which registers the model). Every other name goes to lm-eval unchanged."""

import importlib.abc
import importlib.machinery
import sys


class _TlSteerLmEval(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "lm_eval.api.registry":
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            original = module.get_model

            def get_model(model_name):
                if model_name == "tl_steer" and "tl_steer" not in module.model_registry:
                    import tl_steer.harness  # noqa: F401 - registers it

                return original(model_name)

            module.get_model = get_model

        spec.loader.exec_module = exec_module
        return spec


if not any(type(f).__name__ == "_TlSteerLmEval" for f in sys.meta_path):
    sys.meta_path.insert(0, _TlSteerLmEval())
