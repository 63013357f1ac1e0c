console.log("mechanist");
