"""The site optimizer: inputs → LP (``build_model``) → HiGHS (``solve``) → ``Plan``.

Public API::

    plan_site(inputs)                      one-shot plan over any horizon
    plan_at(program, site, now, ...)       one receding-horizon step
    build_site_inputs(...), SiteInputs     the numbers the LP sees
"""

from lightson.optimize.inputs import SiteInputs, VehicleInputs, build_site_inputs
from lightson.optimize.plan import plan_at, plan_site
from lightson.optimize.solve import WarmStart

__all__ = ["SiteInputs", "VehicleInputs", "WarmStart", "build_site_inputs", "plan_at", "plan_site"]
