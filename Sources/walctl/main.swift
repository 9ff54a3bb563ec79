print("walctl")
