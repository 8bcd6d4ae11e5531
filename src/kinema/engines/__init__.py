"""Video engines behind one small contract (`base`), chosen by name (`registry`)."""
