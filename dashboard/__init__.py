"""The ctae triage dashboard (Streamlit + Plotly): explore, view, label and export."""
