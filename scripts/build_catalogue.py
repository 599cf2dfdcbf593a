"""Build the shipped material catalogue `src/matdiff/materials/data/catalogue.csv` from public sources.

Sources, in priority order (a later row whose name or (E, nu, rho) triple is already taken is dropped):
1. pymatgen-core's element table (MIT): elements with Young's modulus, Poisson's ratio and solid density.
2. bd-materials (Apache-2.0): min-max ranges of E, nu; the catalogue takes the midpoint.
3. FreeCAD material cards from Debian's freecad-common (each card states its own licence, CC-BY 3.0 or LGPL).
4. `HANDBOOK` below: typical values from named public references, one citation per row.

Only materials inside seed A's box (E in (0, 500] GPa, nu in (0, 0.5), rho in (0, 10] g/cm^3) are kept.

Usage (the FreeCAD cards are not installed; fetch and unpack them outside the repo first):
    apt-get download freecad-common && dpkg -x freecad-common_*.deb /tmp/freecad-common
    .venv/bin/python scripts/build_catalogue.py \
        --freecad /tmp/freecad-common/usr/share/freecad/Mod/Material/StandardMaterial
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import math
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import NamedTuple

OUT = Path(__file__).resolve().parents[1] / "src" / "matdiff" / "materials" / "data" / "catalogue.csv"
COLUMNS = ("name", "class", "E_GPa", "nu", "rho_g_cm3", "source")
EXCLUDED_ELEMENTS = {"Pm": "radioactive, no engineering use", "Se": "not a structural solid"}
BD_CATEGORY_CLASS = {
    "metal": "metal",
    "plastic": "polymer",
    "resin": "polymer",
    "glass": "glass",
    "wood": "natural",
}
BD_CLASS_OVERRIDES = {
    "Rubber_GENERIC": "elastomer",
    "TPU_SHORE_95A": "elastomer",
    "TPU_SINTERED": "elastomer",
    "Flexible_GENERIC": "elastomer",
    "CFRP_PLATE": "composite",
    "FR4_GENERIC": "composite",
    "Ceramic_GENERIC": "composite",
}
FREECAD_FATHER_CLASS = {"Metal": "metal", "Thermoplast": "polymer", "Aggregate": "ceramic", "Glass": "glass"}
FREECAD_CLASS_OVERRIDES = {
    "Acrylic-Glass-Generic": "polymer",
    "PA6-Generic": "polymer",
    "PET-Generic": "polymer",
    "PP-Generic": "polymer",
    "PTFE-Generic": "polymer",
    "PVC-Generic": "polymer",
    "Reinforcement-FIB-B500": "metal",
}
FREECAD_EXCLUDED = {
    "None": "placeholder card",
    "TEMPLATE": "placeholder card",
    "Graphite": "YoungsModulus given as '11,7 MPa', an implausible unit",
    "Wood-Generic": "isotropic stand-in for an orthotropic material (nu = 0.05)",
}
PRESSURE_GPA = {"Pa": 1e-9, "kPa": 1e-6, "MPa": 1e-3, "GPa": 1.0}
DENSITY_G_CM3 = {"kg/m^3": 1e-3, "g/cm^3": 1.0}


class Row(NamedTuple):
    """One catalogue row: E in GPa, rho in g/cm^3."""

    name: str
    cls: str
    E: float
    nu: float
    rho: float
    source: str


def in_box(row: Row) -> bool:
    """Whether E in (0, 500] GPa, nu in (0, 0.5), rho in (0, 10] g/cm^3."""
    return 0 < row.E <= 500 and 0 < row.nu < 0.5 and 0 < row.rho <= 10


def pymatgen_rows() -> list[Row]:
    """Elements with E, nu and solid density in pymatgen-core's periodic table."""
    from pymatgen.core import Element

    source = f"pymatgen-core {importlib.metadata.version('pymatgen-core')} element table (MIT)"
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for element in Element:
            values = (element.youngs_modulus, element.poissons_ratio, element.density_of_solid)
            if None in values or element.symbol in EXCLUDED_ELEMENTS:
                continue
            E, nu, rho_kg_m3 = (float(v) for v in values)
            rows.append(Row(f"{element.long_name} (element)", "metal", E, nu, rho_kg_m3 / 1000, source))
    return rows


def bd_materials_rows() -> list[Row]:
    """bd-materials entries with E and nu ranges, at the midpoint of each range."""
    import bd_materials

    source = f"bd-materials {importlib.metadata.version('bd-materials')} (Apache-2.0): midpoint of range"
    rows, seen = [], set()
    for alias in bd_materials.material_names():
        material = bd_materials.resolve(alias).material
        E, nu = getattr(material, "modulus_of_elasticity", None), getattr(material, "poisson_ratio", None)
        if material.name in seen or E is None or nu is None:
            continue
        seen.add(material.name)
        cls = BD_CLASS_OVERRIDES.get(material.name, BD_CATEGORY_CLASS[material.category])
        name = material.name.replace("_", " ").replace(".", " ")
        name = f"Resin {name}" if material.category == "resin" else name
        rows.append(
            Row(name, cls, (E.min + E.max) / 2, (nu.min + nu.max) / 2, material.density / 1000, source)
        )
    return rows


def card_fields(text: str) -> dict[str, str]:
    """The `key = value` lines of a FreeCAD .FCMat card."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith(";"))
    return {key.strip(): value.strip() for key, value in pairs}


def quantity(text: str, units: dict[str, float]) -> float:
    """A card quantity such as '210000 MPa' converted with a unit table; NaN if unparseable."""
    match = re.fullmatch(r"([0-9.eE+-]+)\s*(\S+)", text.replace(",", "."))
    if match is None or match.group(2) not in units:
        return math.nan
    return float(match.group(1)) * units[match.group(2)]


def card_licence(text: str) -> str:
    """The author/licence line (second comment line) of a FreeCAD card."""
    lines = text.splitlines()
    return lines[1].lstrip("; ").strip() if len(lines) > 1 else "FreeCAD, LGPL-2.1+"


def freecad_rows(cards: Path) -> list[Row]:
    """FreeCAD material cards with YoungsModulus, PoissonRatio and Density."""
    rows = []
    for path in sorted(cards.glob("*.FCMat")):
        if path.stem in FREECAD_EXCLUDED:
            continue
        text = path.read_text(encoding="utf-8")
        fields = card_fields(text)
        if not {"YoungsModulus", "PoissonRatio", "Density"} <= fields.keys():
            continue
        E = quantity(fields["YoungsModulus"], PRESSURE_GPA)
        rho = quantity(fields["Density"], DENSITY_G_CM3)
        kind = fields.get("KindOfMaterial", "")
        name = f"{fields['Name']} ({kind})" if kind and kind not in fields["Name"] else fields["Name"]
        cls = FREECAD_CLASS_OVERRIDES.get(path.stem, FREECAD_FATHER_CLASS.get(fields.get("Father", ""), ""))
        source = f"FreeCAD 0.20.2 material cards: {path.name} ({card_licence(text)})"
        rows.append(Row(name, cls, E, float(fields["PoissonRatio"]), rho, source))
    return rows


# --- Hand-entered typical values (E GPa, nu, rho g/cm^3), one public reference per row ---
AA = "Aluminum Association, Aluminum Standards and Data; ASM Handbook Vol. 2 (typical)"
ASM_MG = "ASM Specialty Handbook: Magnesium and Magnesium Alloys (typical)"
ASM_TI = "ASM Materials Properties Handbook: Titanium Alloys (typical)"
ASM_FE = "ASM Handbook Vol. 1, Properties and Selection: Irons, Steels (typical)"
ASM_NF = "ASM Handbook Vol. 2, Properties and Selection: Nonferrous Alloys (typical)"
CDA = "Copper Development Association alloy data (typical)"
NI = "Special Metals / Haynes International alloy datasheets (typical)"
ZN = "International Zinc Association / ASTM B86 die-casting alloy data (typical)"
MATERION = "Materion beryllium product datasheets (typical)"
CRC = "CRC Handbook of Chemistry and Physics, elastic constants of metals (polycrystalline)"
CALLISTER = "Callister, Materials Science and Engineering, Table 12.5 / App. B (typical)"
CERAMIC = "CoorsTek / Kyocera technical-ceramics datasheets (typical)"
CRYSTRAN = "Crystran optical materials datasheets"
SCHOTT = "Schott optical glass datasheets"
CORNING = "Corning glass product datasheets"
TSAI = "Tsai & Hahn, Introduction to Composite Materials, unidirectional ply data (E1, nu12)"
FIBRE = "manufacturer fibre datasheets (Toray, Hexcel, DuPont, DSM, Toyobo, 3M; axial E, typical nu)"
ASHBY = "Ashby, Materials Selection in Mechanical Design, 4th ed., App. C (typical)"
POLYMER = "manufacturer datasheets (SABIC, Solvay, DuPont, Victrex, Celanese; typical)"
GENT = "Gent, Engineering with Rubber (typical unfilled vulcanizate)"
FOAM = "Evonik Rohacell / Diab Divinycell datasheets; nu from Gibson & Ashby, Cellular Solids"
GIBSON = "Gibson & Ashby, Cellular Solids, 2nd ed. / Ashby et al., Metal Foams: A Design Guide (typical)"
ROCK = "Goodman, Introduction to Rock Mechanics, 2nd ed. (typical laboratory value)"
ACI = "ACI 318 modulus formula"
BIO = "Currey, Bones: Structure and Mechanics / Fung, Biomechanics (typical)"
WOOD = "USDA Wood Handbook FPL-GTR-190, ch. 5: MOE and SG at 12% MC, nu_LR; rho = 1.12 SG"
MINERAL = "Bass (1995), AGU Handbook of Physical Constants, elasticity of minerals: VRH K, G -> E, nu"
PIEZO = "Berlincourt, Navy-type PZT datasheets (E = 1/s11^E, nu = -s12^E/s11^E)"

HANDBOOK_METALS = [
    ("Aluminium 1100-O", "metal", 68.9, 0.33, 2.71, AA),
    ("Aluminium 2014-T6", "metal", 72.4, 0.33, 2.80, AA),
    ("Aluminium 2219-T87", "metal", 73.1, 0.33, 2.84, AA),
    ("Aluminium 3003-H14", "metal", 68.9, 0.33, 2.73, AA),
    ("Aluminium 5083-H116", "metal", 70.3, 0.33, 2.66, AA),
    ("Aluminium 6063-T6", "metal", 68.9, 0.33, 2.69, AA),
    ("Aluminium 7050-T7451", "metal", 71.7, 0.33, 2.83, AA),
    ("Aluminium A356.0-T6", "metal", 72.4, 0.33, 2.67, AA),
    ("Aluminium A380.0-F die casting", "metal", 71.0, 0.33, 2.76, AA),
    ("Aluminium-lithium 8090-T81", "metal", 77.0, 0.34, 2.55, AA),
    ("Aluminium-lithium 2090-T83", "metal", 76.0, 0.34, 2.59, AA),
    ("Magnesium AZ31B-H24", "metal", 45.0, 0.35, 1.77, ASM_MG),
    ("Magnesium AZ91D-F", "metal", 44.8, 0.35, 1.81, ASM_MG),
    ("Magnesium AM60B-F", "metal", 45.0, 0.35, 1.80, ASM_MG),
    ("Magnesium ZK60A-T5", "metal", 44.8, 0.35, 1.83, ASM_MG),
    ("Magnesium WE43-T6", "metal", 44.2, 0.27, 1.84, ASM_MG),
    ("Magnesium-lithium LA141A", "metal", 42.0, 0.35, 1.35, ASM_MG),
    ("Titanium CP Grade 2", "metal", 105.0, 0.37, 4.51, ASM_TI),
    ("Titanium Ti-6Al-2Sn-4Zr-2Mo", "metal", 114.0, 0.32, 4.54, ASM_TI),
    ("Titanium Ti-6Al-2Sn-4Zr-6Mo", "metal", 114.0, 0.33, 4.65, ASM_TI),
    ("Titanium Ti-15V-3Cr-3Al-3Sn aged", "metal", 103.0, 0.33, 4.76, ASM_TI),
    ("Titanium Ti-3Al-2.5V", "metal", 100.0, 0.30, 4.48, ASM_TI),
    ("Titanium aluminide Ti-48Al-2Cr-2Nb", "metal", 165.0, 0.24, 3.97, ASM_TI),
    ("Nitinol (austenite)", "metal", 75.0, 0.33, 6.45, ASM_NF),
    ("Inconel 718", "metal", 200.0, 0.294, 8.19, NI),
    ("Inconel 625", "metal", 207.5, 0.278, 8.44, NI),
    ("Inconel 600", "metal", 214.0, 0.29, 8.47, NI),
    ("Hastelloy C-276", "metal", 205.0, 0.307, 8.89, NI),
    ("Monel 400", "metal", 179.0, 0.32, 8.80, NI),
    ("Nickel 200", "metal", 204.0, 0.31, 8.89, NI),
    ("Waspaloy", "metal", 211.0, 0.30, 8.20, NI),
    ("Haynes 230", "metal", 211.0, 0.31, 8.97, NI),
    ("Haynes 25 (L-605)", "metal", 225.0, 0.30, 9.13, NI),
    ("Invar 36", "metal", 141.0, 0.259, 8.05, NI),
    ("Kovar (ASTM F15)", "metal", 138.0, 0.317, 8.36, NI),
    ("Stellite 6", "metal", 209.0, 0.30, 8.44, NI),
    ("Nickel aluminide NiAl", "metal", 188.0, 0.31, 5.90, ASM_NF),
    ("Steel AISI 1020 hot rolled", "metal", 200.0, 0.29, 7.87, ASM_FE),
    ("Steel 300M quenched and tempered", "metal", 205.0, 0.29, 7.83, ASM_FE),
    ("Maraging steel 18Ni(300)", "metal", 190.0, 0.30, 8.00, ASM_FE),
    ("Stainless 17-4PH H900", "metal", 196.0, 0.272, 7.78, ASM_FE),
    ("Stainless 2205 duplex", "metal", 200.0, 0.30, 7.82, ASM_FE),
    ("Stainless 440C hardened", "metal", 200.0, 0.28, 7.65, ASM_FE),
    ("High-speed steel M2", "metal", 207.0, 0.29, 8.16, ASM_FE),
    ("Grey cast iron ASTM A48 class 20", "metal", 80.0, 0.26, 7.05, ASM_FE),
    ("Grey cast iron ASTM A48 class 40", "metal", 124.0, 0.26, 7.30, ASM_FE),
    ("Ductile iron 65-45-12", "metal", 169.0, 0.29, 7.10, ASM_FE),
    ("Compacted graphite iron", "metal", 145.0, 0.26, 7.05, ASM_FE),
    ("Copper C10100 oxygen-free", "metal", 115.0, 0.31, 8.94, CDA),
    ("Beryllium copper C17200", "metal", 128.0, 0.30, 8.25, CDA),
    ("Cartridge brass C26000", "metal", 110.0, 0.375, 8.53, CDA),
    ("Naval brass C46400", "metal", 100.0, 0.34, 8.41, CDA),
    ("Nickel aluminium bronze C63000", "metal", 117.0, 0.32, 7.58, CDA),
    ("Aluminium bronze C95400", "metal", 107.0, 0.32, 7.45, CDA),
    ("Cupronickel 90/10 C70600", "metal", 124.0, 0.34, 8.94, CDA),
    ("Cupronickel 70/30 C71500", "metal", 152.0, 0.33, 8.94, CDA),
    ("Nickel silver C75200", "metal", 124.0, 0.32, 8.73, CDA),
    ("Manganese bronze C86300", "metal", 98.0, 0.34, 7.83, CDA),
    ("Silicon bronze C65500", "metal", 103.0, 0.34, 8.53, CDA),
    ("Zinc alloy Zamak 3", "metal", 96.0, 0.27, 6.60, ZN),
    ("Zinc alloy ZA-8", "metal", 86.0, 0.29, 6.30, ZN),
    ("Zinc alloy ZA-27", "metal", 78.0, 0.32, 5.00, ZN),
    ("Solder Sn63Pb37", "metal", 32.0, 0.40, 8.40, ASM_NF),
    ("Solder Sn-3Ag-0.5Cu (SAC305)", "metal", 51.0, 0.36, 7.38, ASM_NF),
    ("Babbitt ASTM B23 grade 2", "metal", 53.0, 0.33, 7.39, ASM_NF),
    ("Beryllium S-200F", "metal", 303.0, 0.10, 1.85, MATERION),
    ("AlBeMet AM162", "metal", 193.0, 0.17, 2.10, MATERION),
    ("Zircaloy-4", "metal", 99.3, 0.37, 6.56, ASM_NF),
    ("Niobium alloy C-103", "metal", 90.0, 0.35, 8.85, ASM_NF),
    ("Lithium (element)", "metal", 4.9, 0.36, 0.534, CRC),
    ("Sodium (element)", "metal", 10.0, 0.34, 0.97, CRC),
    ("Zr-based bulk metallic glass Vitreloy 1", "metal", 96.0, 0.36, 6.10, ASM_NF),
]

HANDBOOK_CERAMICS = [
    ("Alumina 99.9% (dense)", "ceramic", 416.0, 0.231, 3.984, "Munro (1997), J. Am. Ceram. Soc. 80:1919"),
    ("Alumina 99.5%", "ceramic", 370.0, 0.22, 3.89, CERAMIC),
    ("Alumina 96%", "ceramic", 303.0, 0.21, 3.72, CERAMIC),
    ("Alumina 90%", "ceramic", 276.0, 0.22, 3.60, CERAMIC),
    ("Zirconia 3Y-TZP", "ceramic", 205.0, 0.30, 6.05, CERAMIC),
    ("Zirconia Mg-PSZ", "ceramic", 205.0, 0.23, 5.74, CERAMIC),
    ("Zirconia-toughened alumina (20% ZrO2)", "ceramic", 330.0, 0.23, 4.10, CERAMIC),
    ("Silicon nitride, gas-pressure sintered", "ceramic", 310.0, 0.27, 3.21, CERAMIC),
    ("Silicon nitride, reaction-bonded", "ceramic", 170.0, 0.22, 2.50, CERAMIC),
    ("Sialon", "ceramic", 288.0, 0.23, 3.25, CERAMIC),
    ("Silicon carbide, sintered alpha", "ceramic", 410.0, 0.14, 3.10, CERAMIC),
    ("Silicon carbide, reaction-bonded", "ceramic", 350.0, 0.18, 3.05, CERAMIC),
    ("Silicon carbide, CVD", "ceramic", 466.0, 0.21, 3.21, CERAMIC),
    ("Boron carbide, hot-pressed", "ceramic", 450.0, 0.17, 2.52, CERAMIC),
    ("Aluminium nitride", "ceramic", 330.0, 0.24, 3.26, CERAMIC),
    ("Beryllium oxide 99.5%", "ceramic", 345.0, 0.26, 2.85, CERAMIC),
    ("Mullite", "ceramic", 145.0, 0.24, 2.80, CALLISTER),
    ("Spinel MgAl2O4", "ceramic", 260.0, 0.26, 3.58, CALLISTER),
    ("Magnesium oxide (dense)", "ceramic", 225.0, 0.18, 3.58, CALLISTER),
    ("Cordierite (dense)", "ceramic", 140.0, 0.21, 2.55, CERAMIC),
    ("Steatite C221", "ceramic", 110.0, 0.22, 2.70, CERAMIC),
    ("Titanium carbide", "ceramic", 448.0, 0.19, 4.93, CERAMIC),
    ("Zirconium diboride", "ceramic", 489.0, 0.16, 6.09, CERAMIC),
    ("Chromium carbide Cr3C2", "ceramic", 373.0, 0.28, 6.68, CERAMIC),
    ("Glass-ceramic Pyroceram 9606", "ceramic", 120.0, 0.245, 2.60, CORNING),
    ("Machinable glass-ceramic Macor", "ceramic", 66.9, 0.29, 2.52, CORNING),
    ("Glass-ceramic Zerodur", "ceramic", 90.3, 0.243, 2.53, SCHOTT),
    (
        "Isotropic graphite IG-110",
        "ceramic",
        9.8,
        0.20,
        1.77,
        "Toyo Tanso IG-110 datasheet; nu typical of graphite",
    ),
    ("Glassy carbon Sigradur G", "ceramic", 35.0, 0.15, 1.42, "HTW Sigradur datasheet; nu typical"),
    ("PZT-4 (Navy type I)", "ceramic", 81.3, 0.33, 7.50, PIEZO),
    ("PZT-5A (Navy type II)", "ceramic", 61.0, 0.35, 7.75, PIEZO),
    ("PZT-8 (Navy type III)", "ceramic", 86.9, 0.32, 7.60, PIEZO),
    ("Calcium fluoride CaF2", "ceramic", 75.8, 0.26, 3.18, CRYSTRAN),
    ("Barium fluoride BaF2", "ceramic", 53.07, 0.343, 4.89, CRYSTRAN),
    ("Magnesium fluoride MgF2", "ceramic", 138.5, 0.271, 3.177, CRYSTRAN),
    ("Lithium fluoride LiF", "ceramic", 64.97, 0.225, 2.639, CRYSTRAN),
    ("Sodium chloride NaCl", "ceramic", 39.98, 0.252, 2.17, CRYSTRAN),
    ("Potassium chloride KCl", "ceramic", 29.67, 0.216, 1.98, CRYSTRAN),
    ("Potassium bromide KBr", "ceramic", 26.8, 0.203, 2.75, CRYSTRAN),
    ("Zinc selenide ZnSe (CVD)", "ceramic", 67.2, 0.28, 5.27, CRYSTRAN),
    ("Zinc sulphide ZnS (CVD)", "ceramic", 74.5, 0.29, 4.09, CRYSTRAN),
    ("Germanium (optical)", "ceramic", 102.7, 0.28, 5.33, CRYSTRAN),
    ("Silicon (optical)", "ceramic", 130.9, 0.28, 2.329, CRYSTRAN),
    ("Sapphire", "ceramic", 335.0, 0.25, 3.98, CRYSTRAN),
    ("Gallium arsenide", "ceramic", 82.68, 0.31, 5.32, CRYSTRAN),
    ("Yttrium aluminium garnet YAG", "ceramic", 282.0, 0.25, 4.56, CRYSTRAN),
    (
        "Concrete f'c 30 MPa, normal weight",
        "ceramic",
        25.7,
        0.20,
        2.40,
        f"{ACI} Ec = 4700 sqrt(f'c) MPa; nu 0.2",
    ),
    (
        "Concrete f'c 60 MPa, high strength",
        "ceramic",
        36.4,
        0.20,
        2.45,
        f"{ACI} Ec = 4700 sqrt(f'c) MPa; nu 0.2",
    ),
    (
        "Lightweight concrete f'c 30 MPa",
        "ceramic",
        18.7,
        0.20,
        1.85,
        f"{ACI} Ec = 0.043 wc^1.5 sqrt(f'c), wc = 1850 kg/m^3; nu 0.2",
    ),
]

HANDBOOK_GLASSES = [
    ("Fused silica Corning 7980", "glass", 72.7, 0.16, 2.201, CORNING),
    ("Corning Eagle XG", "glass", 73.6, 0.23, 2.38, CORNING),
    ("Corning Gorilla Glass 3", "glass", 69.3, 0.22, 2.39, CORNING),
    ("Corning ULE 7972", "glass", 67.6, 0.17, 2.21, CORNING),
    ("Schott Borofloat 33", "glass", 64.0, 0.20, 2.23, SCHOTT),
    ("Schott N-BK7", "glass", 82.0, 0.206, 2.51, SCHOTT),
    ("Schott N-SF6", "glass", 93.0, 0.262, 3.37, SCHOTT),
    ("Schott SF6", "glass", 55.0, 0.244, 5.18, SCHOTT),
    ("Schott SF57", "glass", 54.0, 0.248, 5.51, SCHOTT),
    ("Schott SF11", "glass", 66.0, 0.235, 4.74, SCHOTT),
    ("Schott SF2", "glass", 55.0, 0.227, 3.86, SCHOTT),
    ("Schott F2", "glass", 57.0, 0.220, 3.60, SCHOTT),
    ("Schott LF5", "glass", 59.0, 0.223, 3.22, SCHOTT),
    ("Schott N-LASF9", "glass", 109.0, 0.286, 4.44, SCHOTT),
    ("Schott N-LAK9", "glass", 110.0, 0.288, 3.51, SCHOTT),
    ("Schott N-FK51A", "glass", 81.0, 0.293, 3.68, SCHOTT),
    ("Schott N-BAK4", "glass", 77.0, 0.240, 3.05, SCHOTT),
    ("Schott N-SK16", "glass", 89.0, 0.264, 3.58, SCHOTT),
    ("Chalcogenide glass AMTIR-1", "glass", 21.9, 0.266, 4.40, "Amorphous Materials AMTIR-1 datasheet"),
    ("Fluoride glass ZBLAN", "glass", 58.3, 0.30, 4.33, "Fiberlabs / Le Verre Fluore ZBLAN data (typical)"),
]

HANDBOOK_COMPOSITES = [
    ("CFRP UD T300/5208 (0 deg)", "composite", 181.0, 0.28, 1.60, TSAI),
    ("CFRP UD AS/3501 (0 deg)", "composite", 138.0, 0.30, 1.60, TSAI),
    ("Boron/epoxy UD B(4)/5505 (0 deg)", "composite", 204.0, 0.23, 2.00, TSAI),
    ("GFRP UD Scotchply 1002 (0 deg)", "composite", 38.6, 0.26, 1.80, TSAI),
    ("Aramid/epoxy UD Kevlar 49 (0 deg)", "composite", 76.0, 0.34, 1.46, TSAI),
    ("AlSiC-9 metal matrix composite", "composite", 188.0, 0.24, 3.01, "CPS Technologies AlSiC datasheet"),
    ("Carbon fibre Toray T300", "composite", 230.0, 0.20, 1.76, FIBRE),
    ("Carbon fibre Toray T700S", "composite", 230.0, 0.20, 1.80, FIBRE),
    ("Carbon fibre Toray T800S", "composite", 294.0, 0.20, 1.80, FIBRE),
    ("Carbon fibre Toray M40J", "composite", 377.0, 0.20, 1.77, FIBRE),
    ("Carbon fibre Toray M46J", "composite", 436.0, 0.20, 1.84, FIBRE),
    ("Carbon fibre Hexcel IM7", "composite", 276.0, 0.20, 1.78, FIBRE),
    ("Aramid fibre Kevlar 49", "composite", 112.4, 0.36, 1.44, FIBRE),
    ("Aramid fibre Kevlar 29", "composite", 70.5, 0.36, 1.44, FIBRE),
    ("UHMWPE fibre Dyneema SK75", "composite", 116.0, 0.35, 0.975, FIBRE),
    ("PBO fibre Zylon HM", "composite", 270.0, 0.30, 1.56, FIBRE),
    ("Alumina fibre Nextel 610", "composite", 373.0, 0.23, 3.90, FIBRE),
    ("Aluminosilicate fibre Nextel 720", "composite", 260.0, 0.24, 3.40, FIBRE),
    ("Aluminoborosilicate fibre Nextel 440", "composite", 190.0, 0.24, 3.05, FIBRE),
    ("Boron fibre (Specialty Materials)", "composite", 400.0, 0.20, 2.57, FIBRE),
    ("Silicon carbide fibre SCS-6", "composite", 380.0, 0.20, 3.00, FIBRE),
]

HANDBOOK_POLYMERS = [
    ("LDPE", "polymer", 0.20, 0.45, 0.92, ASHBY),
    ("UHMWPE", "polymer", 0.69, 0.46, 0.93, ASHBY),
    ("PP copolymer", "polymer", 1.10, 0.42, 0.90, ASHBY),
    ("Polystyrene GPPS", "polymer", 3.20, 0.34, 1.05, ASHBY),
    ("High-impact polystyrene HIPS", "polymer", 2.00, 0.35, 1.04, ASHBY),
    ("SAN", "polymer", 3.60, 0.35, 1.08, ASHBY),
    ("CPVC", "polymer", 2.90, 0.38, 1.55, ASHBY),
    ("PBT unfilled", "polymer", 2.50, 0.39, 1.31, ASHBY),
    ("PA66 dry", "polymer", 3.10, 0.39, 1.14, ASHBY),
    ("PA11", "polymer", 1.30, 0.40, 1.03, ASHBY),
    ("Epoxy (cast, amine-cured)", "polymer", 3.00, 0.35, 1.20, ASHBY),
    ("Unsaturated polyester resin", "polymer", 3.50, 0.38, 1.25, ASHBY),
    ("Melamine formaldehyde", "polymer", 9.00, 0.33, 1.50, ASHBY),
    ("Cellulose acetate", "polymer", 2.00, 0.40, 1.28, ASHBY),
    ("PPE/PS blend Noryl", "polymer", 2.50, 0.38, 1.06, POLYMER),
    ("PSU Udel P-1700", "polymer", 2.48, 0.37, 1.24, POLYMER),
    ("PESU Ultrason E", "polymer", 2.65, 0.39, 1.37, POLYMER),
    ("PPSU Radel R-5000", "polymer", 2.34, 0.42, 1.29, POLYMER),
    ("PEI Ultem 1000", "polymer", 3.58, 0.36, 1.27, POLYMER),
    ("PEI Ultem 2300 (30% glass)", "polymer", 9.00, 0.36, 1.51, POLYMER),
    ("PAI Torlon 4203L", "polymer", 4.50, 0.45, 1.42, POLYMER),
    ("Polyimide Vespel SP-1", "polymer", 2.48, 0.41, 1.43, POLYMER),
    ("Polyimide film Kapton HN", "polymer", 2.50, 0.34, 1.42, POLYMER),
    ("PPS Fortron unfilled", "polymer", 3.80, 0.37, 1.35, POLYMER),
    ("PVDF Kynar", "polymer", 2.00, 0.34, 1.78, POLYMER),
    ("FEP", "polymer", 0.48, 0.48, 2.15, POLYMER),
    ("PCTFE", "polymer", 1.40, 0.44, 2.12, POLYMER),
    ("POM homopolymer Delrin 100", "polymer", 2.90, 0.35, 1.42, POLYMER),
    ("LCP Vectra A950", "polymer", 10.6, 0.35, 1.40, POLYMER),
    ("PBI Celazole U-60", "polymer", 5.90, 0.34, 1.30, POLYMER),
    ("PA66 30% glass fibre (dry)", "polymer", 10.0, 0.35, 1.37, POLYMER),
    ("PA6 30% glass fibre (dry)", "polymer", 9.50, 0.35, 1.36, POLYMER),
    ("PBT 30% glass fibre", "polymer", 10.0, 0.36, 1.53, POLYMER),
    ("PC 30% glass fibre", "polymer", 8.60, 0.35, 1.43, POLYMER),
    ("PEEK 30% glass fibre", "polymer", 11.0, 0.40, 1.51, POLYMER),
    ("PEEK 30% carbon fibre", "polymer", 24.0, 0.40, 1.40, POLYMER),
    ("PPS 40% glass fibre", "polymer", 14.0, 0.37, 1.65, POLYMER),
    ("PP 30% glass fibre", "polymer", 5.50, 0.40, 1.12, POLYMER),
    ("Natural rubber (NR)", "elastomer", 0.0015, 0.499, 0.93, GENT),
    ("Butyl rubber (IIR)", "elastomer", 0.0020, 0.499, 0.92, GENT),
    ("Chloroprene rubber (CR)", "elastomer", 0.0035, 0.499, 1.23, GENT),
    ("Nitrile rubber (NBR)", "elastomer", 0.0040, 0.499, 1.00, GENT),
    ("EPDM", "elastomer", 0.0030, 0.499, 0.86, GENT),
    ("Styrene-butadiene rubber (SBR)", "elastomer", 0.0025, 0.499, 0.94, GENT),
    (
        "Silicone elastomer Sylgard 184",
        "elastomer",
        0.0018,
        0.49,
        1.03,
        "Dow Sylgard 184 datasheet; nu typical",
    ),
    ("Fluoroelastomer FKM", "elastomer", 0.0060, 0.49, 1.85, GENT),
    ("Polyurethane elastomer Shore 90A", "elastomer", 0.025, 0.48, 1.15, ASHBY),
]

HANDBOOK_FOAMS = [
    ("PMI foam Rohacell 51 IG", "foam", 0.075, 0.30, 0.052, FOAM),
    ("PMI foam Rohacell 71 IG", "foam", 0.092, 0.30, 0.075, FOAM),
    ("PMI foam Rohacell 110 IG", "foam", 0.180, 0.30, 0.110, FOAM),
    ("PVC foam Divinycell H60", "foam", 0.075, 0.32, 0.060, FOAM),
    ("PVC foam Divinycell H100", "foam", 0.130, 0.32, 0.100, FOAM),
    ("PVC foam Divinycell H200", "foam", 0.250, 0.32, 0.200, FOAM),
    ("Aluminium foam Alporas", "foam", 0.80, 0.33, 0.25, GIBSON),
    ("Aluminium foam Duocel 6101 (8%)", "foam", 0.20, 0.33, 0.216, GIBSON),
    ("Expanded polystyrene EPS 20 kg/m^3", "foam", 0.0055, 0.10, 0.020, GIBSON),
    ("Rigid polyurethane foam 32 kg/m^3", "foam", 0.006, 0.30, 0.032, GIBSON),
    ("Syntactic foam (glass microballoons in epoxy)", "foam", 3.0, 0.33, 0.70, GIBSON),
]

HANDBOOK_NATURAL = [
    ("Cortical bone (human femur, longitudinal)", "natural", 17.0, 0.39, 1.90, BIO),
    ("Tooth enamel", "natural", 83.0, 0.30, 2.97, BIO),
    ("Dentine", "natural", 18.0, 0.31, 2.10, BIO),
    ("Ice Ih (polycrystalline, -10 C)", "natural", 9.3, 0.33, 0.917, "Petrenko & Whitworth, Physics of Ice"),
    ("Granite", "natural", 55.0, 0.25, 2.65, ROCK),
    ("Marble", "natural", 50.0, 0.27, 2.70, ROCK),
    ("Limestone", "natural", 40.0, 0.29, 2.55, ROCK),
    ("Sandstone", "natural", 15.0, 0.24, 2.30, ROCK),
    ("Basalt", "natural", 70.0, 0.25, 2.90, ROCK),
    ("Quartzite", "natural", 70.0, 0.15, 2.65, ROCK),
    ("Slate", "natural", 80.0, 0.20, 2.80, ROCK),
]

# name, Wood Handbook MOE (MPa, 12% MC), specific gravity (12% MC), Poisson's ratio nu_LR
WOODS = [
    ("Ash, white", 12000, 0.60, 0.371),
    ("Aspen, quaking", 8100, 0.38, 0.489),
    ("Balsa", 3800, 0.16, 0.229),
    ("Basswood, American", 10100, 0.37, 0.364),
    ("Birch, yellow", 13900, 0.62, 0.426),
    ("Cherry, black", 10300, 0.50, 0.392),
    ("Cottonwood, eastern", 9400, 0.40, 0.344),
    ("Mahogany, Honduras", 10300, 0.45, 0.314),
    ("Maple, sugar", 12600, 0.63, 0.424),
    ("Oak, northern red", 12500, 0.63, 0.350),
    ("Oak, white", 12300, 0.68, 0.369),
    ("Sweetgum", 11300, 0.52, 0.325),
    ("Walnut, black", 11600, 0.55, 0.495),
    ("Yellow-poplar", 10900, 0.42, 0.318),
    ("Baldcypress", 9900, 0.46, 0.338),
    ("Cedar, northern white", 5500, 0.31, 0.337),
    ("Cedar, western red", 7700, 0.32, 0.378),
    ("Douglas-fir, coast", 13400, 0.48, 0.292),
    ("Fir, subalpine", 8900, 0.32, 0.341),
    ("Hemlock, western", 11300, 0.45, 0.485),
    ("Larch, western", 12900, 0.52, 0.355),
    ("Pine, loblolly", 12300, 0.51, 0.328),
    ("Pine, lodgepole", 10900, 0.41, 0.316),
    ("Pine, longleaf", 13700, 0.59, 0.332),
    ("Pine, pond", 12100, 0.56, 0.280),
    ("Pine, ponderosa", 8900, 0.40, 0.337),
    ("Pine, red", 11200, 0.46, 0.347),
    ("Pine, slash", 13700, 0.59, 0.392),
    ("Pine, sugar", 8200, 0.36, 0.356),
    ("Pine, western white", 10100, 0.38, 0.329),
    ("Redwood, old-growth", 9200, 0.40, 0.360),
    ("Spruce, Engelmann", 8900, 0.35, 0.422),
    ("Spruce, Sitka", 10800, 0.40, 0.372),
]

# name, VRH bulk modulus K (GPa), VRH shear modulus G (GPa), density (g/cm^3)
MINERALS = [
    ("Quartz (alpha)", 37.8, 44.3, 2.648),
    ("Calcite", 73.3, 32.0, 2.712),
    ("Aragonite", 47.0, 38.5, 2.93),
    ("Dolomite", 94.9, 45.7, 2.84),
    ("Magnesite", 114.0, 68.0, 3.01),
    ("Siderite", 117.0, 51.0, 3.94),
    ("Forsterite", 129.0, 82.0, 3.22),
    ("Enstatite", 108.0, 76.0, 3.20),
    ("Pyrope garnet", 171.0, 92.0, 3.58),
    ("Zircon", 225.0, 109.0, 4.65),
    ("Rutile", 211.0, 112.0, 4.25),
    ("Cassiterite", 212.0, 104.0, 6.99),
    ("Kyanite", 193.0, 121.0, 3.67),
    ("Topaz", 166.0, 116.0, 3.56),
    ("Pyrite", 143.0, 125.0, 5.02),
    ("Hematite", 206.6, 91.0, 5.27),
    ("Magnetite", 161.0, 91.4, 5.20),
    ("Galena", 58.6, 31.9, 7.60),
    ("Barite", 55.0, 22.8, 4.48),
    ("Gypsum", 42.5, 15.7, 2.31),
    ("Muscovite", 52.0, 31.0, 2.83),
    ("Orthoclase", 46.8, 27.3, 2.56),
    ("Albite", 57.0, 28.6, 2.61),
    ("Anorthite", 84.0, 40.0, 2.76),
    ("Apatite", 84.0, 61.0, 3.20),
]


def wood_rows() -> list[tuple[str, str, float, float, float, str]]:
    """Wood Handbook species: E = MOE (GPa), nu = nu_LR, rho = 1.12 SG (density at 12% moisture)."""
    return [
        (f"Wood, {name}", "natural", moe / 1000, nu, round(1.12 * sg, 3), WOOD) for name, moe, sg, nu in WOODS
    ]


def isotropic_from_bulk_shear(K: float, G: float) -> tuple[float, float]:
    """Young's modulus E = 9KG/(3K+G) and Poisson's ratio nu = (3K-2G)/(2(3K+G)) from K, G."""
    return 9 * K * G / (3 * K + G), (3 * K - 2 * G) / (2 * (3 * K + G))


def mineral_rows() -> list[tuple[str, str, float, float, float, str]]:
    """Minerals as isotropic aggregates: E, nu from VRH-average bulk and shear moduli."""
    rows = []
    for name, K, G, rho in MINERALS:
        E, nu = isotropic_from_bulk_shear(K, G)
        rows.append((f"{name} (mineral aggregate)", "ceramic", round(E, 1), round(nu, 3), rho, MINERAL))
    return rows


HANDBOOK = (
    HANDBOOK_METALS
    + HANDBOOK_CERAMICS
    + HANDBOOK_GLASSES
    + HANDBOOK_COMPOSITES
    + HANDBOOK_POLYMERS
    + HANDBOOK_FOAMS
    + HANDBOOK_NATURAL
    + wood_rows()
    + mineral_rows()
)


def handbook_rows() -> list[Row]:
    """Hand-entered typical values from named public handbooks and datasheets."""
    return [Row(name, cls, E, nu, rho, f"handbook: {ref}") for name, cls, E, nu, rho, ref in HANDBOOK]


def fmt(value: float) -> str:
    """A property value as written to the CSV (6 significant digits)."""
    return f"{value:.6g}"


def merge(groups: list[list[Row]]) -> list[Row]:
    """In-box rows with a first-come name and (E, nu, rho) triple; later duplicates are dropped."""
    rows, names, triples = [], set(), set()
    for row in (r for group in groups for r in group):
        triple = (fmt(row.E), fmt(row.nu), fmt(row.rho))
        if not all(map(math.isfinite, row[2:5])) or not in_box(row) or row.name in names or triple in triples:
            continue
        if not row.cls:
            raise ValueError(f"no class for {row.name!r}")
        names.add(row.name)
        triples.add(triple)
        rows.append(row)
    return rows


def write_csv(rows: list[Row], out: Path) -> None:
    """Write rows sorted by class, then name, with the catalogue's columns."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in sorted(rows, key=lambda r: (r.cls, r.name.lower())):
            writer.writerow([row.name, row.cls, fmt(row.E), fmt(row.nu), fmt(row.rho), row.source])


def main() -> None:
    """Collect all sources, merge, write the CSV and print counts per source family."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--freecad", type=Path, required=True, help="folder of FreeCAD StandardMaterial cards"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.freecad.is_dir():
        parser.error(
            f"{args.freecad} is not a folder of .FCMat cards (see the usage in this script's docstring)"
        )
    rows = merge([pymatgen_rows(), bd_materials_rows(), freecad_rows(args.freecad), handbook_rows()])
    write_csv(rows, args.out)
    print(f"wrote {len(rows)} materials to {args.out}")
    for family, count in Counter(row.source.split(":")[0] for row in rows).items():
        print(f"  {count:4d}  {family}")


if __name__ == "__main__":
    main()
