"""Data for TFSWA-UNet: synthetic multitrack songs (``synthetic``), the MUSDB-layout datasets
builder (``musdb``), torch training datasets (``pipeline``), Hub sharing (``sharing``) and the
``tfswa-data`` CLI (``cli``). Kept import-free so importing one module stays cheap."""
